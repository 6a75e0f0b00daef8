#include "static_files.h"

#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/File.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Timestamp.h>
#include <Poco/URI.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <map>
#include <vector>

namespace hearth::web {
namespace {

using Poco::Net::HTTPResponse;

// The web app is served from this origin and talks to wss:// on it; nothing else is loaded.
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; worker-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

std::string realPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) return {};
  return buf;
}

bool inside(const std::string& root, const std::string& path) {
  return path == root || (path.size() > root.size() && path.compare(0, root.size(), root) == 0 &&
                          path[root.size()] == '/');
}

}  // namespace

void setSecurityHeaders(Poco::Net::HTTPServerResponse& response) {
  response.set("Content-Security-Policy", kCsp);
  response.set("X-Content-Type-Options", "nosniff");
  response.set("Strict-Transport-Security", "max-age=31536000");
  response.set("Referrer-Policy", "no-referrer");
  response.set("X-Frame-Options", "DENY");
}

void sendText(Poco::Net::HTTPServerResponse& response, HTTPResponse::HTTPStatus status,
              const std::string& text) {
  setSecurityHeaders(response);
  response.setStatusAndReason(status);
  response.setContentType("text/plain; charset=utf-8");
  response.set("Cache-Control", "no-store");
  std::string body = text + "\n";
  response.setContentLength(static_cast<std::streamsize>(body.size()));
  std::ostream& out = response.send();
  out << body;
}

std::string mimeType(const std::string& path) {
  static const std::map<std::string, std::string> types = {
      {"html", "text/html; charset=utf-8"},
      {"htm", "text/html; charset=utf-8"},
      {"js", "text/javascript; charset=utf-8"},
      {"mjs", "text/javascript; charset=utf-8"},
      {"css", "text/css; charset=utf-8"},
      {"json", "application/json"},
      {"map", "application/json"},
      {"webmanifest", "application/manifest+json"},
      {"txt", "text/plain; charset=utf-8"},
      {"svg", "image/svg+xml"},
      {"png", "image/png"},
      {"jpg", "image/jpeg"},
      {"jpeg", "image/jpeg"},
      {"gif", "image/gif"},
      {"webp", "image/webp"},
      {"ico", "image/x-icon"},
      {"woff", "font/woff"},
      {"woff2", "font/woff2"},
      {"wasm", "application/wasm"},
      {"crt", "application/x-x509-ca-cert"},
      {"pem", "application/x-pem-file"},
  };
  auto slash = path.rfind('/');
  auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) {
    return "application/octet-stream";
  }
  std::string ext = path.substr(dot + 1);
  for (auto& ch : ext) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  auto it = types.find(ext);
  return it == types.end() ? "application/octet-stream" : it->second;
}

std::string resolveStaticPath(const std::string& root, const std::string& rawPath, bool* refused,
                              bool* redirect) {
  *refused = false;
  *redirect = false;
  std::string decoded;
  try {
    Poco::URI::decode(rawPath, decoded);
  } catch (const Poco::Exception&) {
    *refused = true;
    return {};
  }
  if (decoded.empty() || decoded[0] != '/' || decoded.find('\0') != std::string::npos ||
      decoded.find('\\') != std::string::npos) {
    *refused = true;
    return {};
  }
  std::string relative;
  size_t pos = 1;
  while (pos <= decoded.size()) {
    size_t next = decoded.find('/', pos);
    if (next == std::string::npos) next = decoded.size();
    std::string seg = decoded.substr(pos, next - pos);
    if (seg == "..") {
      *refused = true;
      return {};
    }
    if (!seg.empty() && seg != ".") relative += "/" + seg;
    pos = next + 1;
  }
  std::string rootReal = realPath(root);
  if (rootReal.empty()) return {};
  std::string real = realPath(rootReal + relative);
  if (real.empty()) return {};
  if (!inside(rootReal, real)) {
    *refused = true;  // a symlink out of the directory
    return {};
  }
  struct stat st;
  if (::stat(real.c_str(), &st) != 0) return {};
  if (S_ISDIR(st.st_mode)) {
    if (decoded.back() != '/') {
      *redirect = true;
      return {};
    }
    real = realPath(real + "/index.html");
    if (real.empty()) return {};
    if (!inside(rootReal, real)) {
      *refused = true;
      return {};
    }
    if (::stat(real.c_str(), &st) != 0) return {};
  }
  if (!S_ISREG(st.st_mode)) return {};
  return real;
}

void StaticFileHandler::handleRequest(Poco::Net::HTTPServerRequest& request,
                                      Poco::Net::HTTPServerResponse& response) {
  counters_.httpRequests++;
  const std::string& method = request.getMethod();
  if (method != "GET" && method != "HEAD") {
    counters_.httpRefused++;
    response.set("Allow", "GET, HEAD");
    sendText(response, HTTPResponse::HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD are served");
    return;
  }
  std::string uri = request.getURI();
  std::string rawPath = uri.substr(0, uri.find_first_of("?#"));
  std::string file;
  const bool ca = rawPath == "/ca.crt" && !settings_.caFile.empty();
  if (ca) {
    file = settings_.caFile;
  } else {
    bool refused = false;
    bool redirect = false;
    file = resolveStaticPath(settings_.root, rawPath, &refused, &redirect);
    if (refused) {
      counters_.httpRefused++;
      sendText(response, HTTPResponse::HTTP_BAD_REQUEST, "path refused");
      return;
    }
    if (redirect) {
      setSecurityHeaders(response);
      response.set("Location", rawPath + "/");
      response.setStatusAndReason(HTTPResponse::HTTP_MOVED_PERMANENTLY);
      response.setContentLength(0);
      response.send();
      return;
    }
    if (file.empty()) {
      // A path that names no file and has no file extension is a route of the single-page
      // web app: its index. (A directory, "/x/", without an index.html stays 404: no listing.)
      auto slash = rawPath.rfind('/');
      bool route = rawPath.back() != '/' &&
                   rawPath.find('.', slash == std::string::npos ? 0 : slash) == std::string::npos;
      if (route) {
        bool r1 = false;
        bool r2 = false;
        file = resolveStaticPath(settings_.root, "/", &r1, &r2);
      }
      if (file.empty()) {
        counters_.httpNotFound++;
        sendText(response, HTTPResponse::HTTP_NOT_FOUND, "not found");
        return;
      }
    }
  }
  setSecurityHeaders(response);
  const std::string type = ca ? "application/x-x509-ca-cert" : mimeType(file);
  // HTML names the current asset files, so it is always revalidated; assets may be cached
  // for an hour (the web app's build gives changed assets new names).
  bool html = type.rfind("text/html", 0) == 0;
  response.set("Cache-Control", html ? "no-cache" : "public, max-age=3600");
  Poco::File f(file);
  Poco::Timestamp modified = f.getLastModified();
  if (request.has("If-Modified-Since")) {
    try {
      int tz = 0;
      Poco::DateTime since = Poco::DateTimeParser::parse(Poco::DateTimeFormat::HTTP_FORMAT,
                                                         request.get("If-Modified-Since"), tz);
      if (modified.epochTime() <= since.timestamp().epochTime()) {
        response.setStatusAndReason(HTTPResponse::HTTP_NOT_MODIFIED);
        response.setContentLength(0);
        response.send();
        return;
      }
    } catch (const Poco::Exception&) {
      // An unreadable date: answer in full.
    }
  }
  // sendFile sets Content-Length and Last-Modified and sends only the headers for HEAD.
  response.sendFile(file, type);
}

}  // namespace hearth::web
