#include "cordon/config/kms_options.h"

namespace cordon::orchestrator {

kms::Options KmsOptionsFrom(const Config& config) {
  kms::Options options;
  options.local_keyring = config.kms.local_keyring;
  if (config.kms.pkcs11) {
    options.pkcs11 = kms::Pkcs11Options{config.kms.pkcs11->module, config.kms.pkcs11->token_label,
                                        config.kms.pkcs11->pin_file};
  }
  return options;
}

}  // namespace cordon::orchestrator
