// Streaming CSV column projection (RFC 4180).
//
// The job runner decrypts a sealed CSV chunk by chunk and feeds the plaintext
// through a CsvProjector, which writes only the requested columns, in the
// requested order, to its sink. The other columns are skipped byte by byte and
// never buffered, so they never exist as plaintext anywhere but in the
// decrypted chunk itself.
//
// Input: fields separated by ',', records by LF or CRLF, fields optionally
// quoted with '"' (a quote inside is doubled; quoted fields may hold commas,
// quotes, CR and LF). The first record is the header. Every record must have
// as many fields as the header.
// Output: the projected header, then each projected record, '\n'-terminated;
// a field is quoted (quotes doubled) only when it holds ',', '"', CR or LF.
//
// Errors name the row (1 = the header) and what is wrong; after an error the
// projector refuses further input.
//
// Observation (the `expect:` checks, in the same pass): Observe() names
// columns whose values of each data record go to an observer, whether or not
// they are projected. An observed column missing from the header is not an
// error (observed_present() says which are there; the observer then gets an
// empty field for it). With no projected columns at all the projector writes
// nothing and only observes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "cordon/error.h"

namespace cordon::orchestrator {

class CsvProjector final {
 public:
  using Sink = std::function<Status(std::string_view)>;
  // The fields are views valid only during the call.
  using Observer = std::function<Status(std::span<const std::string_view> fields)>;

  struct Limits {
    std::size_t max_field_bytes = 16u << 20;  // one field (selected or not)
    std::size_t max_header_fields = 16384;
  };

  // `columns`: unique names (empty: project nothing, observe only). `sink` receives projected bytes.
  CsvProjector(std::vector<std::string> columns, Sink sink);
  CsvProjector(std::vector<std::string> columns, Sink sink, Limits limits);

  // Before the first Feed: the observed columns (unique) and who gets their fields, in that order.
  void Observe(std::vector<std::string> columns, Observer observer);
  // Before the first Feed: observe every column of the header, in header order
  // (a header naming a column twice is then an error).
  void ObserveAll(Observer observer);
  [[nodiscard]] const std::vector<std::string>& observed_columns() const { return observed_; }
  // After the header: for each observed column, whether the header has it.
  [[nodiscard]] const std::vector<bool>& observed_present() const { return observed_present_; }

  [[nodiscard]] Status Feed(std::string_view data);
  // Ends the input: an unterminated last record is completed; an open quote is an error.
  [[nodiscard]] Status Finish();

  [[nodiscard]] std::uint64_t rows() const { return row_; }  // records completed, header included

 private:
  enum class State { kFieldStart, kUnquoted, kQuoted, kQuoteInQuoted, kCarriageReturn };

  Status Byte(char c);
  Status EndField();
  Status EndRecord();
  Status HeaderDone();
  void ObserveHeader(const std::map<std::string_view, std::size_t>& index);
  Status Flush();
  Status Error(const std::string& what);
  std::string* Target();
  void Append(char c);
  Status AppendRun(std::string_view run);  // plain text of the current field, limit checked

  std::vector<std::string> columns_;
  Sink sink_;
  Limits limits_;
  State state_ = State::kFieldStart;
  bool failed_ = false;
  std::uint64_t row_ = 0;                // records completed
  std::size_t field_index_ = 0;          // field within the current record
  std::size_t field_bytes_ = 0;          // bytes of the current field
  std::string field_;                    // current field, kept only if selected or in the header
  std::vector<std::string> header_;
  std::vector<int> slot_of_field_;       // header index -> output slot, -1 = dropped
  std::vector<std::string> slots_;       // selected fields of the current record
  std::vector<std::string*> target_of_field_;  // header index -> where its bytes go (Target)
  std::vector<std::string> observed_;    // observed column names
  Observer observer_;
  bool observe_all_ = false;
  std::vector<int> observed_slot_of_field_;  // header index -> observed slot, -1 = not observed
  std::vector<std::string> observed_slots_;    // observed fields that are not also selected
  std::vector<const std::string*> observed_source_;  // observed slot -> its output or observed slot
  std::vector<std::string*> observed_only_;          // the observed slots filled directly (Target)
  std::vector<std::string_view> observed_views_;  // what the observer gets
  std::vector<bool> observed_present_;
  std::string out_;                      // output buffer flushed to the sink
};

}  // namespace cordon::orchestrator
