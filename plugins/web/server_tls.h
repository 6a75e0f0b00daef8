#pragma once
// The TLS server context of the front door (POCO NetSSL over OpenSSL). The certificate it
// presents can be replaced while clients connect (the hub CA re-issued it for new addresses):
// OpenSSL asks for it at each handshake through a certificate callback, which takes the
// current one under a lock, so a handshake sees either the old or the new certificate whole.

#include <Poco/Net/Context.h>

#include <memory>
#include <mutex>
#include <string>

#include "hearth/status.h"

typedef struct x509_st X509;
typedef struct evp_pkey_st EVP_PKEY;
struct stack_st_X509;

namespace hearth::web {

// What the pipe needs of a connection's OpenSSL state that POCO's SecureStreamSocket does not
// offer. ssl: an OpenSSL SSL*.
//
// The SSL of the handshake the calling thread began last (through this context), or nullptr;
// the next call returns nullptr until another handshake begins. A connection's thread takes it
// right after its handshake.
void* takeThreadHandshake();
// Makes OpenSSL read whatever the kernel holds in one read(2) instead of each record's header
// and body in two: a WebSocket client may send one MQTT packet as many small frames, each its
// own record, and they arrive together.
void readAhead(void* ssl);
// Whether OpenSSL holds bytes not yet read (records read ahead, or the rest of one):
// poll(2) does not see them. POCO's available() counts only the current record's.
bool tlsHasPending(void* ssl);

class ServerTls {
 public:
  ServerTls();
  ~ServerTls();
  ServerTls(const ServerTls&) = delete;
  ServerTls& operator=(const ServerTls&) = delete;

  // Loads a PEM certificate chain (server first, then intermediates/CA) and its key. On an
  // error the certificate in use stays.
  Status load(const std::string& certFile, const std::string& keyFile);

  Poco::Net::Context::Ptr context() const { return context_; }

 private:
  struct Identity;
  static int certCallback(void* ssl, void* arg);

  Poco::Net::Context::Ptr context_;
  std::mutex mutex_;
  std::shared_ptr<Identity> current_;
};

}  // namespace hearth::web
