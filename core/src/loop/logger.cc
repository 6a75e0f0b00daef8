#include "loop/logger.h"

#include <cstdio>
#include <cstdlib>

namespace hearth {

void LogSink::write(LogLevel level, std::string_view tag, std::string_view message) {
  if (level < level_.load()) return;
  // sd-daemon priority prefixes let journald keep the level without a timestamp of our own.
  // Under systemd (JOURNAL_STREAM set) the "<N>" prefix carries the level into the journal.
  static const bool kJournal = std::getenv("JOURNAL_STREAM") != nullptr;
  static const char* kPrefix[] = {"<7>debug", "<6>info", "<4>warn", "<3>error"};
  const char* prefix = kPrefix[static_cast<int>(level)] + (kJournal ? 0 : 3);
  std::lock_guard<std::mutex> lock(mutex_);
  std::fprintf(stderr, "%s [%.*s] %.*s\n", prefix, static_cast<int>(tag.size()), tag.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

bool LogSink::parseLevel(const std::string& name, LogLevel* out) {
  if (name == "debug")
    *out = LogLevel::kDebug;
  else if (name == "info")
    *out = LogLevel::kInfo;
  else if (name == "warn")
    *out = LogLevel::kWarn;
  else if (name == "error")
    *out = LogLevel::kError;
  else
    return false;
  return true;
}

}  // namespace hearth
