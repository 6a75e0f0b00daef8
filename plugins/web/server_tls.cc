#include "server_tls.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

namespace hearth::web {

namespace {

thread_local SSL* tHandshake = nullptr;

void infoCallback(const SSL* ssl, int where, int) {
  if (where & SSL_CB_HANDSHAKE_START) tHandshake = const_cast<SSL*>(ssl);
}

}  // namespace

void* takeThreadHandshake() {
  SSL* ssl = tHandshake;
  tHandshake = nullptr;
  return ssl;
}

void readAhead(void* ssl) { SSL_set_read_ahead(static_cast<SSL*>(ssl), 1); }

bool tlsHasPending(void* ssl) { return SSL_has_pending(static_cast<SSL*>(ssl)) == 1; }

struct ServerTls::Identity {
  X509* leaf = nullptr;
  EVP_PKEY* key = nullptr;
  STACK_OF(X509) * chain = nullptr;
  ~Identity() {
    X509_free(leaf);
    EVP_PKEY_free(key);
    sk_X509_pop_free(chain, X509_free);
  }
};

ServerTls::ServerTls() {
  Poco::Net::Context::Params params;
  params.verificationMode = Poco::Net::Context::VERIFY_NONE;  // clients have no certificates
  params.loadDefaultCAs = false;
  // TLS 1.2 with forward-secret AEAD suites, and TLS 1.3 (its own suites).
  params.cipherList = "ECDHE+AESGCM:ECDHE+CHACHA20";
  params.ecdhCurve = "prime256v1";
  context_ = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, params);
  context_->requireMinimumProtocol(Poco::Net::Context::PROTO_TLSV1_2);
  SSL_CTX* ctx = context_->sslContext();
  // An idle connection gives its 2 x 16 KiB record buffers back (RSS per held connection).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  // No server-side session cache (a growing table of every client's session): resumption
  // works with stateless session tickets, which the client keeps.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_info_callback(ctx, infoCallback);
  SSL_CTX_set_cert_cb(
      ctx, [](SSL* ssl, void* arg) { return certCallback(ssl, arg); }, this);
}

ServerTls::~ServerTls() = default;

int ServerTls::certCallback(void* sslPtr, void* arg) {
  auto* self = static_cast<ServerTls*>(arg);
  std::shared_ptr<Identity> id;
  {
    std::lock_guard<std::mutex> lock(self->mutex_);
    id = self->current_;
  }
  if (!id) return 0;  // no certificate: the handshake fails
  SSL* ssl = static_cast<SSL*>(sslPtr);
  // SSL_use_cert_and_key takes its own references; override = 1 replaces what the SSL had.
  return SSL_use_cert_and_key(ssl, id->leaf, id->key, id->chain, 1) == 1 ? 1 : 0;
}

Status ServerTls::load(const std::string& certFile, const std::string& keyFile) {
  auto id = std::make_shared<Identity>();
  BIO* bio = BIO_new_file(certFile.c_str(), "r");
  if (!bio) return Status::error(ErrorCode::kUnavailable, "cannot read " + certFile);
  id->leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  id->chain = sk_X509_new_null();
  while (X509* extra = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    sk_X509_push(id->chain, extra);
  }
  BIO_free(bio);
  ERR_clear_error();  // the loop ends on "no start line"
  if (!id->leaf) return Status::error(ErrorCode::kUnavailable, "no certificate in " + certFile);
  bio = BIO_new_file(keyFile.c_str(), "r");
  if (!bio) return Status::error(ErrorCode::kUnavailable, "cannot read " + keyFile);
  id->key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ERR_clear_error();
  if (!id->key) return Status::error(ErrorCode::kUnavailable, "no private key in " + keyFile);
  if (X509_check_private_key(id->leaf, id->key) != 1) {
    ERR_clear_error();
    return Status::error(ErrorCode::kUnavailable,
                         keyFile + " is not the key of the certificate in " + certFile);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  current_ = std::move(id);
  return Status::ok();
}

}  // namespace hearth::web
