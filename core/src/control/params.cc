#include "control/params.h"

#include <Poco/JSON/Handler.h>

namespace hearth {
namespace {

// Keeps nothing: the parser still checks every token.
class DiscardingHandler : public Poco::JSON::Handler {
 public:
  void reset() override {}
  void startObject() override {}
  void endObject() override {}
  void startArray() override {}
  void endArray() override {}
  void key(const std::string&) override {}
  void null() override {}
  void value(int) override {}
  void value(unsigned) override {}
  void value(Poco::Int64) override {}
  void value(Poco::UInt64) override {}
  void value(const std::string&) override {}
  void value(double) override {}
  void value(bool) override {}
};

}  // namespace

bool isJsonText(const std::string& text) {
  static const Poco::JSON::Handler::Ptr discard = new DiscardingHandler;
  try {
    Poco::JSON::Parser(discard).parse(text);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace hearth
