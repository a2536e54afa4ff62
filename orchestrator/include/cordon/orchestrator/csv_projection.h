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
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "cordon/error.h"

namespace cordon::orchestrator {

class CsvProjector final {
 public:
  using Sink = std::function<Status(std::string_view)>;

  struct Limits {
    std::size_t max_field_bytes = 16u << 20;  // one field (selected or not)
    std::size_t max_header_fields = 16384;
  };

  // `columns`: non-empty, unique names. `sink` receives projected bytes.
  CsvProjector(std::vector<std::string> columns, Sink sink);
  CsvProjector(std::vector<std::string> columns, Sink sink, Limits limits);

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
  Status Flush();
  Status Error(const std::string& what);
  void Append(char c);

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
  std::string out_;                      // output buffer flushed to the sink
};

}  // namespace cordon::orchestrator
