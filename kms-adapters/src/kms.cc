#include "cordon/kms/kms.h"

#include "local/local_keyring.h"
#include "pkcs11/pkcs11_hsm.h"

namespace cordon::kms {
namespace {

// Refuses (never cuts) a field over 255 bytes: two names that differ only
// after byte 255 must not share an AAD.
Status AppendLengthPrefixed(std::vector<std::uint8_t>& out, std::string_view text, const char* what) {
  if (text.size() > 255) {
    return Fail(Errc::kInvalidArgument, std::string("wrap context: the ") + what + " is " +
                                            std::to_string(text.size()) + " bytes; at most 255");
  }
  out.push_back(static_cast<std::uint8_t>(text.size()));
  out.insert(out.end(), text.begin(), text.end());
  return {};
}

}  // namespace

Result<std::vector<std::uint8_t>> WrapAad(std::string_view adapter, std::string_view key_name,
                                          std::uint32_t version, const WrapContext& context) {
  constexpr std::string_view kLabel = "cordon-wrap-v1";
  std::vector<std::uint8_t> aad(kLabel.begin(), kLabel.end());
  aad.push_back(0);
  if (auto ok = AppendLengthPrefixed(aad, adapter, "adapter name"); !ok) return std::unexpected(ok.error());
  if (auto ok = AppendLengthPrefixed(aad, key_name, "key name"); !ok) return std::unexpected(ok.error());
  for (int shift = 24; shift >= 0; shift -= 8) aad.push_back(static_cast<std::uint8_t>(version >> shift));
  if (auto ok = AppendLengthPrefixed(aad, context.dataset, "dataset name"); !ok) return std::unexpected(ok.error());
  if (auto ok = AppendLengthPrefixed(aad, context.job, "job id"); !ok) return std::unexpected(ok.error());
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
