#include "pkcs11/pkcs11_hsm.h"

#include <dlfcn.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <map>
#include <mutex>

#include "cordon/file_io.h"
#include "cordon/key_ref.h"

namespace cordon::kms {
namespace {

constexpr std::string_view kAdapter = "pkcs11";
constexpr std::size_t kKeyIdBytes = 8;
constexpr std::size_t kIvBytes = 12;
constexpr std::size_t kTagBytes = 16;
constexpr std::size_t kBlobBytes = kKeyIdBytes + kIvBytes + kDekBytes + kTagBytes;

std::string RvName(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT: return "CKR_PIN_INCORRECT";
    case CKR_PIN_LOCKED: return "CKR_PIN_LOCKED";
    case CKR_MECHANISM_INVALID: return "CKR_MECHANISM_INVALID";
    case CKR_MECHANISM_PARAM_INVALID: return "CKR_MECHANISM_PARAM_INVALID";
    case CKR_ENCRYPTED_DATA_INVALID: return "CKR_ENCRYPTED_DATA_INVALID";
    case CKR_KEY_FUNCTION_NOT_PERMITTED: return "CKR_KEY_FUNCTION_NOT_PERMITTED";
    case CKR_ATTRIBUTE_READ_ONLY: return "CKR_ATTRIBUTE_READ_ONLY";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    default: break;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "CKR 0x%08lx", static_cast<unsigned long>(rv));
  return buf;
}

std::unexpected<Error> FailRv(Errc code, std::string what, CK_RV rv) {
  return Fail(code, what + ": " + RvName(rv));
}

std::string TrimLabel(const CK_UTF8CHAR* label, std::size_t size) {
  std::string out(reinterpret_cast<const char*>(label), size);
  while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
  return out;
}

// "<name>/v<version>" -> (name, version); false for foreign objects in the token.
bool ParseLabel(std::string_view label, std::string& name, std::uint32_t& version) {
  const std::size_t slash = label.rfind("/v");
  if (slash == std::string_view::npos) return false;
  name = std::string(label.substr(0, slash));
  const std::string_view digits = label.substr(slash + 2);
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), version);
  return ec == std::errc() && end == digits.data() + digits.size() && version > 0 &&
         IsValidKeyName(name);
}

Result<SecretBytes> ReadPin(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FailErrno("PKCS#11 PIN file " + path);
  if ((st.st_mode & 077) != 0) {
    return Fail(Errc::kPermissionDenied,
                "PKCS#11 PIN file " + path + " is group/world accessible; chmod 0600 it");
  }
  auto text = ReadSecretFile(path, 256);
  if (!text) return std::unexpected(WithContext(text.error(), "PKCS#11 PIN file"));
  std::size_t n = text->size();
  while (n > 0 && (text->data()[n - 1] == '\n' || text->data()[n - 1] == '\r')) --n;
  SecretBytes pin = SecretBytes::From({text->data(), n});
  if (pin.empty()) return Fail(Errc::kKmsUnavailable, "PKCS#11 PIN file " + path + " is empty");
  return pin;
}

// C_Initialize/C_Finalize are per process and module: several adapters on
// one module share one initialisation, finalised when the last one closes.
std::mutex g_init_mu;
std::map<CK_FUNCTION_LIST_PTR, int> g_init_users;

class Pkcs11Hsm final : public KeyManager {
 public:
  ~Pkcs11Hsm() override {
    if (f_ != nullptr) {
      // No C_Logout: the login is shared by every session of this process on
      // the token; closing the last session logs out.
      if (session_ != CK_INVALID_HANDLE) f_->C_CloseSession(session_);
      if (initialized_) {
        std::lock_guard lock(g_init_mu);
        if (--g_init_users[f_] == 0) {
          g_init_users.erase(f_);
          f_->C_Finalize(nullptr);
        }
      }
    }
    if (dl_ != nullptr) ::dlclose(dl_);
  }

  Status Open(const Pkcs11Options& o) {
    options_ = o;
    if (auto ok = Load(); !ok) return ok;
    auto slot = FindToken();
    if (!slot) return std::unexpected(slot.error());
    return Login(*slot);
  }

  std::string_view adapter() const override { return kAdapter; }

  Result<KeyInfo> Create(std::string_view name) override {
    if (!IsValidKeyName(name)) {
      return Fail(Errc::kInvalidArgument, "key name '" + std::string(name) + "' is not valid");
    }
    auto existing = Describe(name);
    if (existing) return Fail(Errc::kAlreadyExists, "key " + Ref(name) + " already exists");
    if (existing.error().code != Errc::kKeyUnknown) return std::unexpected(existing.error());
    if (auto ok = Generate(name, 1); !ok) return std::unexpected(ok.error());
    return Describe(name);
  }

  Result<std::vector<KeyInfo>> List() override {
    auto objects = FindObjects("");
    if (!objects) return std::unexpected(objects.error());
    std::map<std::string, KeyInfo> keys;
    for (const Object& o : *objects) {
      KeyInfo& info = keys[o.name];
      info.adapter = std::string(kAdapter);
      info.name = o.name;
      info.versions.push_back(o.version);
      info.disabled = info.disabled || !o.usable;
    }
    std::vector<KeyInfo> out;
    for (auto& [name, info] : keys) {
      std::sort(info.versions.begin(), info.versions.end());
      out.push_back(std::move(info));
    }
    return out;
  }

  Result<KeyInfo> Describe(std::string_view name) override {
    auto all = List();
    if (!all) return std::unexpected(all.error());
    for (KeyInfo& info : *all) {
      if (info.name == name) return std::move(info);
    }
    return Fail(Errc::kKeyUnknown, "no key " + Ref(name) + " in PKCS#11 token '" +
                                       options_.token_label + "' (create it with `cordon keys "
                                       "create " + std::string(name) + " --adapter pkcs11`)");
  }

  Result<KeyInfo> Rotate(std::string_view name) override {
    auto info = Describe(name);
    if (!info) return std::unexpected(info.error());
    if (info->disabled) return Disabled(name);
    if (auto ok = Generate(name, info->current() + 1); !ok) return std::unexpected(ok.error());
    return Describe(name);
  }

  Status Disable(std::string_view name) override {
    auto objects = FindObjects(name);
    if (!objects) return std::unexpected(objects.error());
    if (objects->empty()) return std::unexpected(Describe(name).error());
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE off[] = {{CKA_ENCRYPT, &no, sizeof no}, {CKA_DECRYPT, &no, sizeof no}};
    for (const Object& o : *objects) {
      const CK_RV rv = f_->C_SetAttributeValue(session_, o.handle, off, 2);
      if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "disable " + Ref(name), rv);
    }
    return {};
  }

  Result<WrappedKey> Wrap(std::string_view name, const SecretBytes& dek,
                          const WrapContext& context) override {
    if (dek.size() != kDekBytes) return Fail(Errc::kInvalidArgument, "a data key is 32 bytes");
    auto objects = FindObjects(name);
    if (!objects) return std::unexpected(objects.error());
    if (objects->empty()) return std::unexpected(Describe(name).error());
    const Object& o = *std::max_element(objects->begin(), objects->end(),
                                        [](const Object& a, const Object& b) { return a.version < b.version; });
    if (!o.usable) return Disabled(name);
    WrappedKey out{o.version, std::vector<std::uint8_t>(kBlobBytes)};
    std::copy(o.key_id.begin(), o.key_id.end(), out.blob.begin());
    std::uint8_t* iv = out.blob.data() + kKeyIdBytes;
    if (RAND_bytes(iv, static_cast<int>(kIvBytes)) != 1) return Fail(Errc::kInternal, "RAND_bytes failed");
    auto aad = WrapAad(kAdapter, name, o.version, context);
    if (!aad) return std::unexpected(aad.error());
    CK_GCM_PARAMS gcm{iv, kIvBytes, kIvBytes * 8, aad->data(), aad->size(), kTagBytes * 8};
    CK_MECHANISM mech{CKM_AES_GCM, &gcm, sizeof gcm};
    CK_RV rv = f_->C_EncryptInit(session_, &mech, o.handle);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_EncryptInit with " + Ref(name), rv);
    CK_ULONG len = kDekBytes + kTagBytes;
    rv = f_->C_Encrypt(session_, const_cast<std::uint8_t*>(dek.data()), kDekBytes,
                       iv + kIvBytes, &len);
    if (rv != CKR_OK || len != kDekBytes + kTagBytes) {
      return FailRv(Errc::kKmsUnavailable, "wrap under " + Ref(name), rv);
    }
    return out;
  }

  Result<SecretBytes> Unwrap(std::string_view name, std::uint32_t version,
                             std::span<const std::uint8_t> blob,
                             const WrapContext& context) override {
    auto objects = FindObjects(name);
    if (!objects) return std::unexpected(objects.error());
    if (objects->empty()) return std::unexpected(Describe(name).error());
    const auto o = std::find_if(objects->begin(), objects->end(),
                                [&](const Object& x) { return x.version == version; });
    if (o == objects->end()) {
      return Fail(Errc::kKeyUnknown, Ref(name) + " has no version " + std::to_string(version) +
                                         " in token '" + options_.token_label + "'");
    }
    if (std::any_of(objects->begin(), objects->end(), [](const Object& x) { return !x.usable; })) {
      return Disabled(name);
    }
    if (blob.size() != kBlobBytes) {
      return Fail(Errc::kTampered, "wrapped data key for " + Ref(name) + " has the wrong size");
    }
    if (CRYPTO_memcmp(blob.data(), o->key_id.data(), kKeyIdBytes) != 0) {
      return Fail(Errc::kWrongKey, "the data key was wrapped by other key material than " +
                                       Ref(name) + " version " + std::to_string(version) +
                                       " in token '" + options_.token_label + "'");
    }
    std::array<std::uint8_t, kBlobBytes> copy{};
    std::copy(blob.begin(), blob.end(), copy.begin());
    auto aad = WrapAad(kAdapter, name, version, context);
    if (!aad) return std::unexpected(aad.error());
    CK_GCM_PARAMS gcm{copy.data() + kKeyIdBytes, kIvBytes, kIvBytes * 8, aad->data(), aad->size(),
                      kTagBytes * 8};
    CK_MECHANISM mech{CKM_AES_GCM, &gcm, sizeof gcm};
    CK_RV rv = f_->C_DecryptInit(session_, &mech, o->handle);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_DecryptInit with " + Ref(name), rv);
    SecretBytes dek(kDekBytes + kTagBytes);  // some modules want room for the tag
    CK_ULONG len = dek.size();
    rv = f_->C_Decrypt(session_, copy.data() + kKeyIdBytes + kIvBytes, kDekBytes + kTagBytes,
                       dek.data(), &len);
    if (rv != CKR_OK || len != kDekBytes) {
      return Fail(Errc::kTampered, "unwrapping the data key under " + Ref(name) + " version " +
                                       std::to_string(version) +
                                       " failed authentication (" + RvName(rv) +
                                       "): the wrapped key, its dataset or job binding was altered");
    }
    return SecretBytes::From(dek.span().first(kDekBytes));
  }

 private:
  struct Object {
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    std::string name;
    std::uint32_t version = 0;
    std::array<std::uint8_t, kKeyIdBytes> key_id{};
    bool usable = true;  // CKA_ENCRYPT && CKA_DECRYPT
  };

  static std::string Ref(std::string_view name) { return "kms://pkcs11/" + std::string(name); }

  static std::unexpected<Error> Disabled(std::string_view name) {
    return Fail(Errc::kKeyDisabled, "key " + Ref(name) + " is disabled: wrap and unwrap are refused");
  }

  Status Load() {
    if (::access(options_.module.c_str(), R_OK) != 0) {
      return FailErrno("PKCS#11 module " + options_.module).error().code == Errc::kNotFound
                 ? Fail(Errc::kKmsUnavailable, "PKCS#11 module " + options_.module +
                                                   " does not exist (kms.pkcs11.module in the config)")
                 : Fail(Errc::kKmsUnavailable, "PKCS#11 module " + options_.module + " is not readable");
    }
    dl_ = ::dlopen(options_.module.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl_ == nullptr) {
      return Fail(Errc::kKmsUnavailable, "cannot load PKCS#11 module " + options_.module + ": " + ::dlerror());
    }
    auto get = reinterpret_cast<CK_C_GetFunctionList>(::dlsym(dl_, "C_GetFunctionList"));
    if (get == nullptr || get(&f_) != CKR_OK || f_ == nullptr) {
      f_ = nullptr;
      return Fail(Errc::kKmsUnavailable, options_.module + " is not a PKCS#11 module (no C_GetFunctionList)");
    }
    std::lock_guard lock(g_init_mu);
    if (g_init_users[f_] == 0) {
      CK_C_INITIALIZE_ARGS args{};
      args.flags = CKF_OS_LOCKING_OK;
      const CK_RV rv = f_->C_Initialize(&args);
      if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {  // someone else in this process owns it
        g_init_users.erase(f_);
        return {};
      }
      if (rv != CKR_OK) {
        g_init_users.erase(f_);
        return FailRv(Errc::kKmsUnavailable, "C_Initialize of " + options_.module, rv);
      }
    }
    ++g_init_users[f_];
    initialized_ = true;
    return {};
  }

  Result<CK_SLOT_ID> FindToken() {
    CK_ULONG count = 0;
    CK_RV rv = f_->C_GetSlotList(CK_TRUE, nullptr, &count);
    std::vector<CK_SLOT_ID> slots(count);
    if (rv == CKR_OK && count > 0) rv = f_->C_GetSlotList(CK_TRUE, slots.data(), &count);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_GetSlotList", rv);
    for (CK_ULONG i = 0; i < count; ++i) {
      CK_TOKEN_INFO info{};
      if (f_->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
      if (TrimLabel(info.label, sizeof info.label) == options_.token_label) return slots[i];
    }
    return Fail(Errc::kKmsUnavailable, "no PKCS#11 token labelled '" + options_.token_label +
                                           "' in module " + options_.module + " (" +
                                           std::to_string(count) + " token(s) present)");
  }

  Status Login(CK_SLOT_ID slot) {
    CK_RV rv = f_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &session_);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_OpenSession on token '" + options_.token_label + "'", rv);
    auto pin = ReadPin(options_.pin_file);
    if (!pin) return std::unexpected(pin.error());
    rv = f_->C_Login(session_, CKU_USER, pin->data(), pin->size());
    if (rv == CKR_PIN_INCORRECT) {
      return Fail(Errc::kKmsUnavailable, "wrong PIN for PKCS#11 token '" + options_.token_label +
                                             "' (from " + options_.pin_file + ")");
    }
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      return FailRv(Errc::kKmsUnavailable, "login to PKCS#11 token '" + options_.token_label + "'", rv);
    }
    return {};
  }

  // Every Cordon key object, or only those of `name` when it is not empty.
  Result<std::vector<Object>> FindObjects(std::string_view name) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
    CK_RV rv = f_->C_FindObjectsInit(session_, tmpl, 1);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_FindObjectsInit", rv);
    std::vector<CK_OBJECT_HANDLE> handles;
    for (;;) {
      CK_OBJECT_HANDLE batch[64];
      CK_ULONG got = 0;
      rv = f_->C_FindObjects(session_, batch, 64, &got);
      if (rv != CKR_OK || got == 0) break;
      handles.insert(handles.end(), batch, batch + got);
    }
    f_->C_FindObjectsFinal(session_);
    if (rv != CKR_OK) return FailRv(Errc::kKmsUnavailable, "C_FindObjects", rv);
    std::vector<Object> out;
    for (CK_OBJECT_HANDLE h : handles) {
      Object o;
      o.handle = h;
      if (!ReadObject(o) || (!name.empty() && o.name != name)) continue;
      out.push_back(std::move(o));
    }
    return out;
  }

  bool ReadObject(Object& o) {
    char label[256] = {};
    CK_BBOOL enc = CK_FALSE;
    CK_BBOOL dec = CK_FALSE;
    CK_ATTRIBUTE attrs[] = {{CKA_LABEL, label, sizeof label - 1},
                            {CKA_ID, o.key_id.data(), o.key_id.size()},
                            {CKA_ENCRYPT, &enc, sizeof enc},
                            {CKA_DECRYPT, &dec, sizeof dec}};
    if (f_->C_GetAttributeValue(session_, o.handle, attrs, 4) != CKR_OK) return false;
    if (attrs[1].ulValueLen != kKeyIdBytes) return false;
    o.usable = enc == CK_TRUE && dec == CK_TRUE;
    return ParseLabel(std::string_view(label, attrs[0].ulValueLen), o.name, o.version);
  }

  Status Generate(std::string_view name, std::uint32_t version) {
    std::string label = std::string(name) + "/v" + std::to_string(version);
    std::array<std::uint8_t, kKeyIdBytes> key_id{};
    if (RAND_bytes(key_id.data(), static_cast<int>(key_id.size())) != 1) {
      return Fail(Errc::kInternal, "RAND_bytes failed");
    }
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_ULONG bytes = kDekBytes;
    CK_BBOOL yes = CK_TRUE;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_VALUE_LEN, &bytes, sizeof bytes}, {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},      {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},    {CKA_ENCRYPT, &yes, sizeof yes},
        {CKA_DECRYPT, &yes, sizeof yes},      {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},         {CKA_LABEL, label.data(), label.size()},
        {CKA_ID, key_id.data(), key_id.size()},
    };
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
    const CK_RV rv = f_->C_GenerateKey(session_, &mech, tmpl, sizeof tmpl / sizeof tmpl[0], &handle);
    if (rv != CKR_OK) {
      return FailRv(Errc::kKmsUnavailable, "generate " + Ref(name) + " v" + std::to_string(version) +
                                               " in token '" + options_.token_label + "'", rv);
    }
    return {};
  }

  Pkcs11Options options_;
  void* dl_ = nullptr;
  CK_FUNCTION_LIST_PTR f_ = nullptr;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
  bool initialized_ = false;
};

}  // namespace

Result<std::unique_ptr<KeyManager>> OpenPkcs11Hsm(const Pkcs11Options& options) {
  auto hsm = std::make_unique<Pkcs11Hsm>();
  if (auto ok = hsm->Open(options); !ok) return std::unexpected(ok.error());
  return hsm;
}

}  // namespace cordon::kms
