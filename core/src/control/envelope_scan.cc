#include "control/envelope_scan.h"

#include <Poco/JSON/Handler.h>
#include <Poco/JSON/Parser.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/NumberFormatter.h>

#include <sstream>
#include <vector>

namespace hearth {

namespace {

// Follows the parser's events: the top object's "id" and "params" are kept, everything else
// only counted through (depth). Inside "params" each event is written out as it comes.
class EnvelopeHandler : public Poco::JSON::Handler {
 public:
  explicit EnvelopeHandler(ScannedEnvelope& out) : out_(out) {}

  void reset() override {}
  void startObject() override {
    if (depth_ == 0) {
      topIsObject_ = true;
    } else if (depth_ == 1 && key_ == "params") {
      capturing_ = true;
      text_.str(std::string());
      firsts_.clear();
      out_.hasParams = true;
    } else if (depth_ == 1) {
      topLevelNonObject();  // "id" as an object
    }
    if (capturing_) open('{');
    ++depth_;
  }
  void endObject() override {
    --depth_;
    if (capturing_) {
      close('}');
      if (depth_ == 1) {
        capturing_ = false;
        out_.paramsIsObject = true;
        out_.paramsJson = text_.str();
      }
    }
    if (depth_ == 1) key_.clear();
  }
  void startArray() override {
    if (depth_ == 0) throw NotAnObject();
    if (depth_ == 1) topLevelNonObject();  // "id" or "params" as an array
    if (capturing_) open('[');
    ++depth_;
  }
  void endArray() override {
    --depth_;
    if (capturing_) close(']');
    if (depth_ == 1) key_.clear();
  }
  void key(const std::string& k) override {
    if (depth_ == 1) {
      key_ = k;
      return;
    }
    if (!capturing_) return;
    separate();
    Poco::JSON::Stringifier::formatString(k, text_);
    text_ << ':';
    afterKey_ = true;
  }
  void null() override { scalar("null"); }
  void value(int v) override { scalar(Poco::NumberFormatter::format(v)); }
  void value(unsigned v) override { scalar(Poco::NumberFormatter::format(v)); }
  void value(Poco::Int64 v) override { scalar(Poco::NumberFormatter::format(v)); }
  void value(Poco::UInt64 v) override { scalar(Poco::NumberFormatter::format(v)); }
  void value(double d) override { scalar(Poco::NumberFormatter::format(d)); }
  void value(bool b) override { scalar(b ? "true" : "false"); }
  void value(const std::string& s) override {
    if (depth_ == 1 && key_ == "id") {
      out_.idIsString = true;
      out_.id = s;
      key_.clear();
      return;
    }
    if (!scalarWritten()) return;
    Poco::JSON::Stringifier::formatString(s, text_);
  }

  bool topIsObject() const { return topIsObject_; }

 private:
  // A value of the top object that is not a string "id" nor an object "params": "id" and
  // "params" of the wrong type (the last of a repeated key counts, as in a parsed document).
  // The key is kept for a container's end to clear.
  void topLevelNonObject() {
    if (depth_ != 1) return;
    if (key_ == "id") out_.idIsString = false;
    if (key_ == "params") {
      out_.hasParams = true;
      out_.paramsIsObject = false;
      out_.paramsJson.clear();
    }
  }
  void scalar(const std::string& text) {
    if (scalarWritten()) text_ << text;
  }
  // Before a scalar: whether it is to be written (inside "params"; the separator is written
  // then), else it is noted as the top object's value or skipped.
  bool scalarWritten() {
    if (depth_ == 0) throw NotAnObject();
    if (!capturing_) {
      topLevelNonObject();
      if (depth_ == 1) key_.clear();
      return false;
    }
    separate();
    return true;
  }
  void separate() {
    if (afterKey_) {
      afterKey_ = false;
      return;
    }
    if (!firsts_.empty()) {
      if (!firsts_.back()) text_ << ',';
      firsts_.back() = false;
    }
  }
  void open(char c) {
    separate();
    text_ << c;
    firsts_.push_back(true);
  }
  void close(char c) {
    text_ << c;
    firsts_.pop_back();
  }

  ScannedEnvelope& out_;
  int depth_ = 0;
  bool topIsObject_ = false;
  std::string key_;  // the top object's current key
  bool capturing_ = false;
  bool afterKey_ = false;
  std::vector<bool> firsts_;  // per open container: nothing written in it yet
  std::ostringstream text_;
};

}  // namespace

ScannedEnvelope scanEnvelope(const std::string& payload) {
  ScannedEnvelope out;
  auto* handler = new EnvelopeHandler(out);
  Poco::JSON::Handler::Ptr owner(handler);
  Poco::JSON::Parser parser(owner);
  parser.parse(payload);
  if (!handler->topIsObject()) throw NotAnObject();
  return out;
}

}  // namespace hearth
