#pragma once
// Log lines to stderr (journald picks them up under systemd) with a level and a tag.

#include <atomic>
#include <mutex>
#include <string>

#include "hearth/host.h"

namespace hearth {

class LogSink {
 public:
  void setLevel(LogLevel level) { level_ = level; }
  LogLevel level() const { return level_; }
  void write(LogLevel level, std::string_view tag, std::string_view message);
  static bool parseLevel(const std::string& name, LogLevel* out);

 private:
  std::atomic<LogLevel> level_{LogLevel::kInfo};
  std::mutex mutex_;
};

class TaggedLogger : public Logger {
 public:
  TaggedLogger(LogSink& sink, std::string tag) : sink_(sink), tag_(std::move(tag)) {}
  void log(LogLevel level, std::string_view message) override { sink_.write(level, tag_, message); }

 private:
  LogSink& sink_;
  std::string tag_;
};

}  // namespace hearth
