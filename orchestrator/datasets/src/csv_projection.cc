#include "cordon/datasets/csv_projection.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>

namespace cordon::orchestrator {
namespace {

constexpr std::size_t kFlushBytes = 256 * 1024;

// The bytes that end a run of plain field text: outside quotes ',', '"', CR
// and LF; inside quotes only '"'.
constexpr auto kSpecial = [] {
  std::array<bool, 256> t{};
  t[','] = t['"'] = t['\r'] = t['\n'] = true;
  return t;
}();

std::size_t PlainRun(const char* p, const char* end) {
  const char* q = p;
  while (q != end && !kSpecial[static_cast<unsigned char>(*q)]) ++q;
  return static_cast<std::size_t>(q - p);
}

void AppendField(std::string& out, std::string_view field) {
  if (PlainRun(field.data(), field.data() + field.size()) == field.size()) {
    out += field;
    return;
  }
  out += '"';
  for (const char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

bool IsSelected(const std::vector<int>& slot_of_field, std::size_t index) {
  return index < slot_of_field.size() && slot_of_field[index] >= 0;
}

}  // namespace

CsvProjector::CsvProjector(std::vector<std::string> columns, Sink sink)
    : CsvProjector(std::move(columns), std::move(sink), Limits{}) {}

CsvProjector::CsvProjector(std::vector<std::string> columns, Sink sink, Limits limits)
    : columns_(std::move(columns)), sink_(std::move(sink)), limits_(limits),
      slots_(columns_.size()) {}

Status CsvProjector::Error(const std::string& what) {
  failed_ = true;
  return Fail(Errc::kInvalidData, "CSV row " + std::to_string(row_ + 1) + ": " + what);
}

void CsvProjector::Observe(std::vector<std::string> columns, Observer observer) {
  observed_ = std::move(columns);
  observer_ = std::move(observer);
  observed_slots_.assign(observed_.size(), std::string());
}

void CsvProjector::ObserveAll(Observer observer) {
  observe_all_ = true;
  observer_ = std::move(observer);
}

// The buffer the current field's bytes go to: the header's fields and the
// selected ones to field_ (EndField files them), an observed field that is not
// selected straight to its observed slot, any other to none.
std::string* CsvProjector::Target() {
  if (row_ == 0) return &field_;
  return field_index_ < target_of_field_.size() ? target_of_field_[field_index_] : nullptr;
}

void CsvProjector::Append(char c) {
  if (std::string* t = Target()) *t += c;
}

Status CsvProjector::Feed(std::string_view data) {
  if (failed_) return Fail(Errc::kInvalidData, "CSV projection already failed");
  const char* p = data.data();
  const char* const end = p + data.size();
  while (p != end) {
    // A run of plain field text goes in at once; the byte that ends it, and
    // every byte of the rarer states, through Byte().
    if (state_ == State::kFieldStart || state_ == State::kUnquoted || state_ == State::kQuoted) {
      std::size_t n = 0;
      if (state_ == State::kQuoted) {
        const void* quote = std::memchr(p, '"', static_cast<std::size_t>(end - p));
        n = static_cast<std::size_t>((quote != nullptr ? static_cast<const char*>(quote) : end) - p);
      } else {
        n = PlainRun(p, end);
        if (n != 0) state_ = State::kUnquoted;
      }
      if (n != 0) {
        if (auto ok = AppendRun({p, n}); !ok) return ok;
        p += n;
        if (p == end) break;
      }
    }
    if (auto ok = Byte(*p++); !ok) return ok;
  }
  return out_.size() >= kFlushBytes ? Flush() : Status{};
}

Status CsvProjector::AppendRun(std::string_view run) {
  if (field_bytes_ + run.size() > limits_.max_field_bytes) {
    return Error("field " + std::to_string(field_index_ + 1) + " is longer than " +
                 std::to_string(limits_.max_field_bytes) + " bytes");
  }
  field_bytes_ += run.size();
  if (std::string* t = Target()) t->append(run);
  return {};
}

Status CsvProjector::Byte(char c) {
  switch (state_) {
    case State::kCarriageReturn:
      if (c != '\n') return Error("carriage return not followed by a line feed");
      state_ = State::kFieldStart;
      return EndRecord();
    case State::kQuoted:
      if (c == '"') {
        state_ = State::kQuoteInQuoted;
        return {};
      }
      break;
    case State::kQuoteInQuoted:
      if (c == '"') {
        state_ = State::kQuoted;
        break;  // a doubled quote is one literal quote
      }
      if (c != ',' && c != '\n' && c != '\r') {
        return Error("field " + std::to_string(field_index_ + 1) +
                     ": text after a closing quote (a quote inside a quoted field must be doubled)");
      }
      [[fallthrough]];
    case State::kFieldStart:
    case State::kUnquoted:
      if (c == ',') {
        state_ = State::kFieldStart;
        return EndField();
      }
      if (c == '\n' || c == '\r') {
        state_ = c == '\r' ? State::kCarriageReturn : State::kFieldStart;
        if (auto ok = EndField(); !ok) return ok;
        return c == '\n' ? EndRecord() : Status{};
      }
      if (c == '"') {
        if (state_ != State::kFieldStart) {
          return Error("field " + std::to_string(field_index_ + 1) +
                       ": a quote inside an unquoted field (quote the whole field and double it)");
        }
        state_ = State::kQuoted;
        return {};
      }
      state_ = State::kUnquoted;
      break;
  }
  if (++field_bytes_ > limits_.max_field_bytes) {
    return Error("field " + std::to_string(field_index_ + 1) + " is longer than " +
                 std::to_string(limits_.max_field_bytes) + " bytes");
  }
  Append(c);
  return {};
}

Status CsvProjector::EndField() {
  if (row_ == 0) {
    if (header_.size() >= limits_.max_header_fields) {
      return Error("the header has more than " + std::to_string(limits_.max_header_fields) +
                   " columns");
    }
    header_.push_back(std::move(field_));
  } else if (IsSelected(slot_of_field_, field_index_)) {
    // swap keeps both buffers' capacity: no allocation per field. An observed
    // field that is also selected is seen in its output slot (EndRecord); one
    // that is not is already in its observed slot (Target).
    slots_[static_cast<std::size_t>(slot_of_field_[field_index_])].swap(field_);
  }
  field_.clear();
  field_bytes_ = 0;
  ++field_index_;
  return {};
}

Status CsvProjector::EndRecord() {
  if (row_ == 0) {
    if (auto ok = HeaderDone(); !ok) return ok;
  } else if (field_index_ != slot_of_field_.size()) {
    return Error("has " + std::to_string(field_index_) + " fields; the header has " +
                 std::to_string(slot_of_field_.size()));
  } else {
    if (observer_) {
      for (std::size_t i = 0; i < observed_views_.size(); ++i) observed_views_[i] = *observed_source_[i];
      if (auto ok = observer_(observed_views_); !ok) {
        failed_ = true;
        return ok;
      }
      for (std::string* field : observed_only_) field->clear();
    }
    if (!columns_.empty()) {
      for (std::size_t i = 0; i < slots_.size(); ++i) {
        if (i != 0) out_ += ',';
        AppendField(out_, slots_[i]);
        slots_[i].clear();
      }
      out_ += '\n';
    }
  }
  ++row_;
  field_index_ = 0;
  return {};
}

Status CsvProjector::HeaderDone() {
  std::map<std::string_view, std::size_t> index;
  for (std::size_t i = 0; i < header_.size(); ++i) {
    if (!index.emplace(header_[i], i).second && observe_all_) {
      return Error("column '" + header_[i] + "' appears twice in the header");
    }
    if (index.at(header_[i]) != i &&
        (std::find(columns_.begin(), columns_.end(), header_[i]) != columns_.end() ||
         std::find(observed_.begin(), observed_.end(), header_[i]) != observed_.end())) {
      return Error("column '" + header_[i] + "' appears twice in the header; the projection is ambiguous");
    }
  }
  slot_of_field_.assign(header_.size(), -1);
  for (std::size_t slot = 0; slot < columns_.size(); ++slot) {
    const auto it = index.find(columns_[slot]);
    if (it == index.end()) {
      std::string have;
      for (std::size_t i = 0; i < header_.size() && i < 20; ++i) have += (i ? ", " : "") + header_[i];
      if (header_.size() > 20) have += ", ...";
      return Error("column '" + columns_[slot] + "' is not in the header (the header has: " + have + ")");
    }
    slot_of_field_[it->second] = static_cast<int>(slot);
  }
  ObserveHeader(index);
  // Where each field's bytes go (Target) and where the observer reads each observed column.
  target_of_field_.assign(header_.size(), nullptr);
  observed_source_.resize(observed_.size());
  for (std::size_t k = 0; k < observed_.size(); ++k) observed_source_[k] = &observed_slots_[k];  // absent: stays empty
  observed_only_.clear();
  for (std::size_t i = 0; i < header_.size(); ++i) {
    const int observed = observed_slot_of_field_[i];
    if (slot_of_field_[i] >= 0) {
      target_of_field_[i] = &field_;
      if (observed >= 0) observed_source_[static_cast<std::size_t>(observed)] = &slots_[static_cast<std::size_t>(slot_of_field_[i])];
    } else if (observed >= 0) {
      std::string* slot = &observed_slots_[static_cast<std::size_t>(observed)];
      target_of_field_[i] = slot;
      observed_source_[static_cast<std::size_t>(observed)] = slot;
      observed_only_.push_back(slot);
    }
  }
  for (std::size_t i = 0; i < columns_.size(); ++i) {
    if (i != 0) out_ += ',';
    AppendField(out_, columns_[i]);
  }
  if (!columns_.empty()) out_ += '\n';
  header_.clear();
  header_.shrink_to_fit();
  return {};
}

void CsvProjector::ObserveHeader(const std::map<std::string_view, std::size_t>& index) {
  if (observe_all_) {
    observed_ = header_;
    observed_slots_.assign(observed_.size(), std::string());
  }
  observed_slot_of_field_.assign(header_.size(), -1);
  observed_present_.assign(observed_.size(), false);
  observed_views_.assign(observed_.size(), std::string_view());
  for (std::size_t slot = 0; slot < observed_.size(); ++slot) {
    const auto it = index.find(observed_[slot]);
    if (it == index.end()) continue;
    observed_slot_of_field_[it->second] = static_cast<int>(slot);
    observed_present_[slot] = true;
  }
}

Status CsvProjector::Flush() {
  if (out_.empty()) return {};
  auto ok = sink_(out_);
  out_.clear();
  if (!ok) failed_ = true;
  return ok;
}

Status CsvProjector::Finish() {
  if (failed_) return Fail(Errc::kInvalidData, "CSV projection already failed");
  switch (state_) {
    case State::kQuoted:
      return Error("unterminated quoted field " + std::to_string(field_index_ + 1) + " at end of data");
    case State::kCarriageReturn:
      return Error("carriage return not followed by a line feed at end of data");
    case State::kUnquoted:
    case State::kQuoteInQuoted:
      if (auto ok = EndField(); !ok) return ok;
      if (auto ok = EndRecord(); !ok) return ok;
      break;
    case State::kFieldStart:
      if (field_index_ != 0) {  // "a,b," at EOF: the record has an empty last field
        if (auto ok = EndField(); !ok) return ok;
        if (auto ok = EndRecord(); !ok) return ok;
      }
      break;
  }
  if (row_ == 0) return Error("the data is empty: expected a header row");
  return Flush();
}

}  // namespace cordon::orchestrator
