#include "cordon/kms/kms.h"

#include "local/local_keyring.h"
#include "pkcs11/pkcs11_hsm.h"

namespace cordon::kms {
namespace {

void AppendLengthPrefixed(std::vector<std::uint8_t>& out, std::string_view text) {
  const std::size_t n = text.size() > 255 ? 255 : text.size();
  out.push_back(static_cast<std::uint8_t>(n));
  out.insert(out.end(), text.begin(), text.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace

std::vector<std::uint8_t> WrapAad(std::string_view adapter, std::string_view key_name,
                                  std::uint32_t version, const WrapContext& context) {
  constexpr std::string_view kLabel = "cordon-wrap-v1";
  std::vector<std::uint8_t> aad(kLabel.begin(), kLabel.end());
  aad.push_back(0);
  AppendLengthPrefixed(aad, adapter);
  AppendLengthPrefixed(aad, key_name);
  for (int shift = 24; shift >= 0; shift -= 8) aad.push_back(static_cast<std::uint8_t>(version >> shift));
  AppendLengthPrefixed(aad, context.dataset);
  AppendLengthPrefixed(aad, context.job);
  return aad;
}

std::vector<std::string_view> KnownAdapters() { return {"local", "pkcs11"}; }

Result<std::unique_ptr<KeyManager>> OpenKeyManager(std::string_view adapter, const Options& options) {
  if (adapter == "local") {
    if (options.local_keyring.empty()) {
      return Fail(Errc::kKmsUnavailable, "kms adapter 'local': no keyring directory configured");
    }
    return OpenLocalKeyring(options.local_keyring);
  }
  if (adapter == "pkcs11") {
    if (!options.pkcs11) {
      return Fail(Errc::kKmsUnavailable,
                  "kms adapter 'pkcs11' is not configured: add kms.pkcs11 {module, token_label, "
                  "pin_file} to the config");
    }
    return OpenPkcs11Hsm(*options.pkcs11);
  }
  return Fail(Errc::kKeyUnknown, "unknown kms adapter '" + std::string(adapter) +
                                     "': this build knows 'local' and 'pkcs11'");
}

}  // namespace cordon::kms
