#pragma once
// Status and error codes shared by the core and plugins.
//
// The error codes are the stable strings of the MQTT API (docs/mqtt-api.md). They are
// header-only so that a plugin never links against the core.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>

namespace hearth {

enum class ErrorCode {
  kOk = 0,
  kInvalidRequest,
  kUnknownMethod,
  kNotFound,
  kForbidden,
  kNotOwner,
  kShareRequired,
  kAlreadyBound,
  kNotBindable,
  kTokenInvalid,
  kTokenExpired,
  kTokenUsed,
  kConflict,
  kLimitReached,
  kRateLimited,
  kOffline,
  kTimeout,
  kUnavailable,
  kInternal,
  // The state directory's filesystem is full (or over its quota): the change was not made.
  // Reads keep working; changes are accepted again as soon as there is space.
  kStorageFull,
};

// The wire name of a code ("OK" for kOk).
inline const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk:
      return "OK";
    case ErrorCode::kInvalidRequest:
      return "INVALID_REQUEST";
    case ErrorCode::kUnknownMethod:
      return "UNKNOWN_METHOD";
    case ErrorCode::kNotFound:
      return "NOT_FOUND";
    case ErrorCode::kForbidden:
      return "FORBIDDEN";
    case ErrorCode::kNotOwner:
      return "NOT_OWNER";
    case ErrorCode::kShareRequired:
      return "SHARE_REQUIRED";
    case ErrorCode::kAlreadyBound:
      return "ALREADY_BOUND";
    case ErrorCode::kNotBindable:
      return "NOT_BINDABLE";
    case ErrorCode::kTokenInvalid:
      return "TOKEN_INVALID";
    case ErrorCode::kTokenExpired:
      return "TOKEN_EXPIRED";
    case ErrorCode::kTokenUsed:
      return "TOKEN_USED";
    case ErrorCode::kConflict:
      return "CONFLICT";
    case ErrorCode::kLimitReached:
      return "LIMIT_REACHED";
    case ErrorCode::kRateLimited:
      return "RATE_LIMITED";
    case ErrorCode::kOffline:
      return "OFFLINE";
    case ErrorCode::kTimeout:
      return "TIMEOUT";
    case ErrorCode::kUnavailable:
      return "UNAVAILABLE";
    case ErrorCode::kInternal:
      return "INTERNAL";
    case ErrorCode::kStorageFull:
      return "STORAGE_FULL";
  }
  return "INTERNAL";
}

// Outcome of an operation at a boundary: ok, or an error code with a human message. Ignoring
// one is a compile error in -Werror builds ([[nodiscard]]); (void) says "on purpose".
class [[nodiscard]] Status {
 public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(ErrorCode code, std::string message) {
    return Status(code, std::move(message));
  }

  bool isOk() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return isOk(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string toString() const {
    return isOk() ? "OK" : std::string(errorCodeName(code_)) + ": " + message_;
  }

 private:
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

// A value or an error Status. value() of an error aborts (naming the error) instead of
// handing out a default: check isOk() first.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool isOk() const { return status_.isOk(); }
  explicit operator bool() const { return isOk(); }
  const Status& status() const { return status_; }
  const T& value() const& { return checked(), value_; }
  T& value() & { return checked(), value_; }
  T&& value() && { return checked(), std::move(value_); }

 private:
  void checked() const {
    if (!status_.isOk()) {
      std::fprintf(stderr, "hearth: value() of an error Result (%s)\n", status_.toString().c_str());
      std::abort();
    }
  }
  Status status_;
  T value_{};
};

// Identifiers (user, client, device, app ids) match [A-Za-z0-9._:-]{1,64}. Anything else is
// refused: a '+', '#' or '/' in an identity is how MQTT ACLs get bypassed.
inline bool isValidIdentifier(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace hearth
