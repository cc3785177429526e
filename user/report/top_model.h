// What `faultprobe top` shows, without a terminal: the sort order, the name
// filter, the selection, the column text and the header lines. The ncurses
// screen and the batch printer both draw from this, and unit tests drive it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "report/view.h"

namespace fp {

enum class SortKey { State, Cpu, Rss, Io, Runq, Faults, Pid };
const char* sort_key_name(SortKey k);
// The key a keystroke selects: s c m i r f p.
std::optional<SortKey> sort_key_for_key(int ch);

// Human units: "0", "512", "1.5K", "12M", "3.0G" (powers of 1024, one
// decimal below 10). Negative or NaN values show as "0".
std::string human_bytes(double bytes);
// Milliseconds: "0", "0.35", "4.2", "87", "1.2s".
std::string human_ms(double ms);
// A rate or percentage: "0", "0.5", "12", "1.2K" (one decimal below 10, 1000-based above 9999).
std::string human_number(double v);

// State groups, in the order the default sort shows them.
enum class StateRank { Fault = 0, Throttled = 1, Restarted = 2, Ok = 3 };
StateRank state_rank(const std::string& state);

// The process table's columns.
struct Column {
  const char* title;
  int width;
  bool left;  // text columns are left-aligned, numbers right-aligned
};
const std::vector<Column>& top_columns();
// The column titles and one row, each cell padded (or cut) to its width,
// single spaces between cells.
std::string format_table_header();
std::string format_row(const ProcessRow& r);

class TopModel {
 public:
  // A new view: re-sorts and re-filters, keeps the same process selected if
  // it is still shown, else keeps the selected index (clamped).
  void set_view(DaemonView v);
  const DaemonView& view() const { return view_; }

  void set_sort(SortKey k);
  SortKey sort() const { return sort_; }
  // Case-insensitive substring of COMM; "" shows everything.
  void set_filter(std::string f);
  const std::string& filter() const { return filter_; }

  // The rows shown, in order (pointers into view().procs, valid until the next set_view).
  const std::vector<const ProcessRow*>& rows() const { return shown_; }
  // -1 when nothing is shown.
  int selected() const { return selected_; }
  const ProcessRow* selected_row() const;
  void move_selection(int delta);  // clamped to the list
  void select_first();
  void select_last();
  // First row index to draw so that the selection is visible in `height` rows.
  size_t scroll_top(size_t height);

  // The open fault (fault_to_json form) of the selected process, pretty
  // printed; "" when it has none.
  std::string selected_evidence() const;

  // Header lines: host, probe and source, then the open faults (at most
  // `max_faults` lines, then "... N more").
  std::vector<std::string> header_lines(const std::string& source, size_t max_faults) const;
  // One plain-text frame (batch mode): header, blank line, table header and
  // at most `max_rows` rows (0: all).
  std::string frame_text(const std::string& source, size_t max_faults, size_t max_rows) const;

 private:
  void rebuild(uint32_t keep_pid);

  DaemonView view_;
  SortKey sort_ = SortKey::State;
  std::string filter_;
  std::vector<const ProcessRow*> shown_;
  int selected_ = -1;
  size_t top_ = 0;
};

// A one-line summary of a fault's evidence: "key=value" pairs, numbers
// rounded, cut to `max_len` characters.
std::string short_evidence(const nlohmann::json& evidence, size_t max_len);

}  // namespace fp
