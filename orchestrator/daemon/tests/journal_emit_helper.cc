// journal_emit_helper JOB_ID OUTCOME MESSAGE: one journal::JobEvent, for tests/systemd (run with
// systemd-run -p StandardError=journal; journalctl -o json then shows the fields). Prints
// "journal" or "spdlog": the path taken.
#include <iostream>

#include "journal.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::cerr << "usage: journal_emit_helper JOB_ID OUTCOME MESSAGE\n";
    return 2;
  }
  cordon::daemon::journal::JobEvent(argv[1], argv[2], argv[3]);
  std::cout << (cordon::daemon::journal::StderrIsJournal() ? "journal" : "spdlog") << "\n";
  return 0;
}
