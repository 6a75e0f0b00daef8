#include "hub_ca.h"

#include <Poco/DigestEngine.h>
#include <Poco/Net/NetworkInterface.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <memory>
#include <set>

namespace hearth::web {
namespace {

constexpr long kCaDays = 3650;  // SPEC §7: 10 years
// Apple's clients refuse TLS server certificates valid longer than 825 days, also from a
// user-installed CA; 397 days is what every client accepts.
constexpr long kServerDays = 397;
constexpr long kRenewBeforeDays = 30;

struct Deleter {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(GENERAL_NAMES* p) const { GENERAL_NAMES_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, Deleter>;
using CertPtr = std::unique_ptr<X509, Deleter>;
using BioPtr = std::unique_ptr<BIO, Deleter>;

std::string sslError(const std::string& what) {
  std::string msg = what;
  unsigned long e = ERR_get_error();
  if (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    msg += ": ";
    msg += buf;
  }
  ERR_clear_error();
  return msg;
}

Status fail(const std::string& what) { return Status::error(ErrorCode::kInternal, sslError(what)); }

bool exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

CertPtr readCert(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  return CertPtr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

KeyPtr readKey(const std::string& path) {
  BioPtr bio(BIO_new_file(path.c_str(), "r"));
  if (!bio) return nullptr;
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

// Writes PEM text to path atomically with the given mode: a temp file in the same directory,
// fsync, rename.
Status writeFile(const std::string& path, const std::string& text, mode_t mode) {
  std::string tmp = path + ".tmp";
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return Status::error(ErrorCode::kInternal, "cannot create " + tmp);
  ::fchmod(fd, mode);  // the umask may have taken bits away
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(fd, text.data() + off, text.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::error(ErrorCode::kInternal, "cannot write " + tmp);
    }
    off += static_cast<size_t>(n);
  }
  bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Status::error(ErrorCode::kInternal, "cannot write " + path);
  }
  return Status::ok();
}

std::string pemOf(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string pemOf(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

bool addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (!ext) return false;
  bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// A certificate for key, issued by issuer (nullptr: self-signed) and signed with signer.
CertPtr makeCert(EVP_PKEY* key, const std::string& commonName, long days, X509* issuer,
                 EVP_PKEY* signer, const std::vector<std::pair<int, std::string>>& extensions) {
  CertPtr cert(X509_new());
  if (!cert) return nullptr;
  X509_set_version(cert.get(), 2);
  std::unique_ptr<BIGNUM, Deleter> serial(BN_new());
  if (!serial || !BN_rand(serial.get(), 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
      !BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert.get()))) {
    return nullptr;
  }
  // An hour of slack for clients whose clock is a little behind.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 86400L);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("hearth"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(commonName.c_str()), -1, -1, 0);
  X509_set_issuer_name(cert.get(), issuer ? X509_get_subject_name(issuer) : name);
  X509* issuerCert = issuer ? issuer : cert.get();
  for (const auto& [nid, value] : extensions) {
    if (!addExtension(cert.get(), issuerCert, nid, value)) return nullptr;
  }
  if (X509_sign(cert.get(), signer, EVP_sha256()) <= 0) return nullptr;
  return cert;
}

std::string hostName() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == 0) return "hearth";
  std::string h = buf;
  // Only the first label: <hostname>.local is the mDNS name.
  auto dot = h.find('.');
  if (dot != std::string::npos) h.resize(dot);
  return h;
}

bool expiresWithin(X509* cert, long days) {
  time_t limit = std::time(nullptr) + days * 86400L;
  return X509_cmp_time(X509_get0_notAfter(cert), &limit) <= 0;
}

bool sameIdentity(const ServerIdentity& a, const ServerIdentity& b) {
  std::set<std::string> da(a.dnsNames.begin(), a.dnsNames.end());
  std::set<std::string> db(b.dnsNames.begin(), b.dnsNames.end());
  std::set<std::string> ia(a.ipAddresses.begin(), a.ipAddresses.end());
  std::set<std::string> ib(b.ipAddresses.begin(), b.ipAddresses.end());
  return da == db && ia == ib;
}

ServerIdentity sansOf(X509* cert) {
  ServerIdentity out;
  std::unique_ptr<GENERAL_NAMES, Deleter> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS) {
      const ASN1_IA5STRING* s = gn->d.dNSName;
      out.dnsNames.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* s = gn->d.iPAddress;
      int len = ASN1_STRING_length(s);
      const unsigned char* p = ASN1_STRING_get0_data(s);
      if (len == 4) {
        out.ipAddresses.push_back(Poco::Net::IPAddress(p, 4).toString());
      } else if (len == 16) {
        out.ipAddresses.push_back(Poco::Net::IPAddress(p, 16).toString());
      }
    }
  }
  return out;
}

}  // namespace

ServerIdentity currentServerIdentity() {
  ServerIdentity id;
  std::string host = hostName();
  id.dnsNames = {host, host + ".local", "localhost"};
  std::sort(id.dnsNames.begin(), id.dnsNames.end());
  id.dnsNames.erase(std::unique(id.dnsNames.begin(), id.dnsNames.end()), id.dnsNames.end());
  std::set<std::string> addrs = {"127.0.0.1", "::1"};
  try {
    for (const auto& [index, nif] : Poco::Net::NetworkInterface::map(false, false)) {
      for (const auto& entry : nif.addressList()) {
        const Poco::Net::IPAddress& a = entry.get<Poco::Net::NetworkInterface::IP_ADDRESS>();
        if (a.isWildcard() || a.isLinkLocal()) continue;
        std::string s = a.toString();
        auto pct = s.find('%');
        if (pct != std::string::npos) s.resize(pct);
        addrs.insert(s);
      }
    }
  } catch (const std::exception&) {
    // No interface list (a bare namespace): loopback is still named.
  }
  id.ipAddresses.assign(addrs.begin(), addrs.end());
  return id;
}

CertFiles HubCa::files() const {
  return {dir_ + "/server.pem", dir_ + "/server.key", dir_ + "/ca.pem"};
}

Status HubCa::ensure(const ServerIdentity& identity, bool* reissued) {
  if (reissued) *reissued = false;
  if (::mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST) {
    return Status::error(ErrorCode::kInternal, "cannot create " + dir_);
  }
  const std::string caKeyFile = dir_ + "/ca.key";
  const std::string caFile = dir_ + "/ca.pem";
  KeyPtr caKey;
  CertPtr ca;
  if (exists(caFile) || exists(caKeyFile)) {
    caKey = readKey(caKeyFile);
    ca = readCert(caFile);
    if (!caKey || !ca) {
      return fail("the hub CA in " + dir_ + " is unreadable (ca.pem / ca.key); move both away " +
                  "to create a new one (every client then pairs again)");
    }
    if (X509_check_private_key(ca.get(), caKey.get()) != 1) {
      return fail(caKeyFile + " is not the key of " + caFile);
    }
  } else {
    caKey.reset(EVP_EC_gen("P-256"));
    if (!caKey) return fail("cannot generate the CA key");
    ca = makeCert(caKey.get(), "hearth hub CA " + hostName(), kCaDays, nullptr, caKey.get(),
                  {{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
                   {NID_key_usage, "critical,keyCertSign,cRLSign"},
                   {NID_subject_key_identifier, "hash"}});
    if (!ca) return fail("cannot create the CA certificate");
    // The key first: a CA certificate without its key would be useless.
    Status s = writeFile(caKeyFile, pemOf(caKey.get()), 0600);
    if (s) s = writeFile(caFile, pemOf(ca.get()), 0644);
    if (!s) return s;
  }

  const CertFiles f = files();
  if (exists(f.certFile) && exists(f.keyFile)) {
    CertPtr current = readCert(f.certFile);
    KeyPtr currentKey = readKey(f.keyFile);
    if (current && currentKey && X509_check_private_key(current.get(), currentKey.get()) == 1 &&
        X509_verify(current.get(), caKey.get()) == 1 &&
        !expiresWithin(current.get(), kRenewBeforeDays) &&
        sameIdentity(sansOf(current.get()), identity)) {
      return Status::ok();
    }
  }

  KeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return fail("cannot generate the server key");
  std::string san;
  for (const auto& d : identity.dnsNames) san += (san.empty() ? "DNS:" : ",DNS:") + d;
  for (const auto& a : identity.ipAddresses) san += (san.empty() ? "IP:" : ",IP:") + a;
  std::string cn = identity.dnsNames.empty() ? "hearth" : identity.dnsNames.front();
  CertPtr cert = makeCert(key.get(), cn, kServerDays, ca.get(), caKey.get(),
                          {{NID_basic_constraints, "critical,CA:FALSE"},
                           {NID_key_usage, "critical,digitalSignature"},
                           {NID_ext_key_usage, "serverAuth"},
                           {NID_subject_key_identifier, "hash"},
                           {NID_authority_key_identifier, "keyid:always"},
                           {NID_subject_alt_name, san}});
  if (!cert) return fail("cannot create the server certificate");
  // server.pem carries the chain (server, then CA) so clients that were given only the
  // fingerprint can check it.
  Status s = writeFile(f.keyFile, pemOf(key.get()), 0600);
  if (s) s = writeFile(f.certFile, pemOf(cert.get()) + pemOf(ca.get()), 0644);
  if (!s) return s;
  if (reissued) *reissued = true;
  return Status::ok();
}

Result<std::string> certificateFingerprint(const std::string& pemFile) {
  CertPtr cert = readCert(pemFile);
  if (!cert) return fail("cannot read a certificate from " + pemFile);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert.get(), EVP_sha256(), md, &len) != 1) return fail("digest failed");
  return "sha256:" + Poco::DigestEngine::digestToHex(Poco::DigestEngine::Digest(md, md + len));
}

Result<ServerIdentity> certificateSans(const std::string& pemFile) {
  CertPtr cert = readCert(pemFile);
  if (!cert) return fail("cannot read a certificate from " + pemFile);
  return sansOf(cert.get());
}

}  // namespace hearth::web
