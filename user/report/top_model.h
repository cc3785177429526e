// What `faultprobe top` shows, without a terminal: the sort order, the name
// filter, the selection, the column text and the header lines. The ncurses
// screen and the batch printer both draw from this, and unit tests drive it.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "report/top_groups.h"
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
// Cells padded (or cut) to their columns' widths, single spaces between
// them, no trailing blanks.
std::string format_cells(const std::vector<Column>& cols, const std::vector<std::string>& cells);
// The column titles and one row of the process table.
std::string format_table_header();
std::string format_row(const ProcessRow& r);

// One row per process (as top and htop), or one per unit/cgroup (as systemd-cgtop).
enum class ViewMode { Processes, Groups };

class TopModel {
 public:
  // A new view: re-sorts and re-filters, keeps the same process selected if
  // it is still shown, else keeps the selected index (clamped).
  void set_view(DaemonView v);
  const DaemonView& view() const { return view_; }

  void set_sort(SortKey k);
  SortKey sort() const { return sort_; }
  // Case-insensitive substring of COMM (of the group name in the group
  // view); "" shows everything.
  void set_filter(std::string f);
  const std::string& filter() const { return filter_; }
  // Every process (the default, idle ones included), or only those that did
  // something in the window or are in D now.
  void set_hide_idle(bool hide);
  bool hide_idle() const { return hide_idle_; }
  // Processes, or their groups. Switching keeps the selected process's group
  // selected, and back.
  void set_mode(ViewMode m);
  ViewMode mode() const { return mode_; }
  // Only the processes of one group (group_of() name; "" = all).
  void set_group_filter(std::string g);
  const std::string& group_filter() const { return group_filter_; }

  // The rows shown, in order (pointers into view().procs, valid until the next set_view).
  const std::vector<const ProcessRow*>& rows() const { return shown_; }
  // The group rows shown, in order (valid until the next set_view or filter change).
  const std::vector<const GroupRow*>& groups() const { return shown_groups_; }
  // Rows of the current mode's list.
  size_t list_size() const { return mode_ == ViewMode::Groups ? shown_groups_.size() : shown_.size(); }
  // -1 when nothing is shown.
  int selected() const { return selected_; }
  const ProcessRow* selected_row() const;   // null in the group view
  const GroupRow* selected_group() const;   // null in the process view
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
  // at most `max_rows` rows (0: all) of the current mode.
  std::string frame_text(const std::string& source, size_t max_faults, size_t max_rows) const;
  // The current mode's table header and its i-th shown row.
  std::string table_header() const;
  std::string table_row(size_t i) const;

 private:
  // What stays selected across a rebuild: a process, or a group.
  struct Keep {
    uint32_t pid = 0;
    std::string group;
  };
  Keep keep() const;
  void rebuild(const Keep& keep);
  void sort_groups();

  DaemonView view_;
  SortKey sort_ = SortKey::State;
  ViewMode mode_ = ViewMode::Processes;
  bool hide_idle_ = false;
  std::string filter_, group_filter_;
  std::vector<const ProcessRow*> shown_;
  std::vector<GroupRow> groups_;
  std::vector<const GroupRow*> shown_groups_;
  int selected_ = -1;
  size_t top_ = 0;
};

// A one-line summary of a fault's evidence: "key=value" pairs, numbers
// rounded, cut to `max_len` characters.
std::string short_evidence(const nlohmann::json& evidence, size_t max_len);

}  // namespace fp
