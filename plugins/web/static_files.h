#pragma once
// https://HOST:8443/: the web app's static files from one directory (SPEC §7, §8). GET and
// HEAD only; no directory listings; no path leaves the directory (a ".." segment, encoded or
// not, is refused, and a symlink that resolves outside it is not followed); MIME types by
// extension; Cache-Control; security headers on every answer. Runs on front door I/O threads.

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <string>

#include "door_guard.h"

namespace hearth::web {

// The security headers every answer of the front door carries.
void setSecurityHeaders(Poco::Net::HTTPServerResponse& response);

// A short plain-text answer with the security headers.
void sendText(Poco::Net::HTTPServerResponse& response, Poco::Net::HTTPResponse::HTTPStatus status,
              const std::string& text);

// The content type for a file name ("application/octet-stream" when unknown).
std::string mimeType(const std::string& path);

// Resolves a request path (still percent-encoded) to a regular file inside root. Returns "" for
// a refused path (bad encoding, a ".." or NUL or backslash, outside root after symlinks) with
// *refused set, or "" for a missing file with *refused false. A directory path resolves to its
// index.html; *redirect is set when a directory was asked for without the trailing slash.
std::string resolveStaticPath(const std::string& root, const std::string& rawPath, bool* refused,
                              bool* redirect);

struct StaticSettings {
  std::string root;    // www directory
  std::string caFile;  // served as /ca.crt (the CA clients install or pin)
};

class StaticFileHandler : public Poco::Net::HTTPRequestHandler {
 public:
  StaticFileHandler(const StaticSettings& settings, DoorCounters& counters)
      : settings_(settings), counters_(counters) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override;

 private:
  const StaticSettings& settings_;
  DoorCounters& counters_;
};

}  // namespace hearth::web
