// cordon-sandbox: runs a command in the sandbox a Cordon job gets.
// The sandbox itself is the subject of its own issue; until it lands this
// helper refuses to run anything (exit 125, the set-up failure status).
#include <CLI/CLI.hpp>
#include <iostream>

int main(int argc, char** argv) {
  CLI::App app{"cordon-sandbox — run a command in the Cordon job sandbox", "cordon-sandbox"};
  app.set_version_flag("--version", "cordon-sandbox " CORDON_VERSION);
  app.allow_extras();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 125;
  }
  std::cerr << "cordon-sandbox: the sandbox is not implemented in this build; refusing to run "
               "anything unsandboxed\n";
  return 125;
}
