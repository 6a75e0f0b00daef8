#pragma once
// The hub's own certificate authority and the server certificate the front door presents
// (SPEC §7). Created with OpenSSL's libcrypto on first start in a directory of the hub's
// state; the server certificate is re-issued by the same CA when the host's names or addresses
// change, or a month before it expires. Keys are written mode 0600, atomically (temp + rename).
//
// Not thread-safe: the plugin calls it from the hub loop only.

#include <string>
#include <vector>

#include "hearth/status.h"

namespace hearth::web {

// What the server certificate has to name.
struct ServerIdentity {
  std::vector<std::string> dnsNames;  // host name, host name.local, localhost
  std::vector<std::string> ipAddresses;
};

// The host's names and every current address of its interfaces (link-local IPv6 left out).
ServerIdentity currentServerIdentity();

// The files of one certificate set: the server's certificate and key, and the CA whose
// fingerprint clients pin.
struct CertFiles {
  std::string certFile;
  std::string keyFile;
  std::string caFile;
};

class HubCa {
 public:
  // dir: where ca.pem, ca.key, server.pem and server.key live (created 0700 if missing).
  explicit HubCa(std::string dir) : dir_(std::move(dir)) {}

  // Creates the CA if there is none, and a server certificate for identity unless the present
  // one already names exactly these names and addresses and is not about to expire. Sets
  // *reissued when a new server certificate was written.
  Status ensure(const ServerIdentity& identity, bool* reissued = nullptr);

  CertFiles files() const;

 private:
  std::string dir_;
};

// "sha256:<64 lowercase hex>" of the first certificate in a PEM file (DER encoding), or an
// error naming the file.
Result<std::string> certificateFingerprint(const std::string& pemFile);

// The DNS names and IP addresses in the subjectAltName of the first certificate of a PEM file.
Result<ServerIdentity> certificateSans(const std::string& pemFile);

}  // namespace hearth::web
