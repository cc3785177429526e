#include "cli/top_screen.h"

#include <curses.h>

#include <algorithm>
#include <chrono>
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "probe/probe.h"
#include "report/top_model.h"
#include "util/log_format.h"
#include "util/text.h"

namespace fp {
namespace {

constexpr size_t kMaxFaultLines = 5;  // open faults listed in the header before "... N more"

enum ColorPair : short { kFaultColor = 1, kThrottledColor = 2, kRestartedColor = 3 };

const char* const kHelp[] = {
    "faultprobe top - keys",
    "",
    "  up/down, j/k      move the selection     PgUp/PgDn, Home/End, g/G",
    "  Enter             show / hide the selected process's fault evidence;",
    "                    on a group: its processes",
    "  /                 filter by name (Enter keeps it, Esc clears it)",
    "  Esc               close the panel, clear the filters",
    "  I                 hide / show idle processes (did nothing in the interval)",
    "  C                 group by unit / cgroup (as systemd-cgtop) / one row per process",
    "  space             pause / resume refreshing",
    "  s                 sort: open faults first, then CPU (the default)",
    "  c m i r f p       sort by CPU, RSS, IO, run-queue p99, faults/s, PID (name)",
    "  h ?               this help",
    "  q                 quit",
    "",
    "STATE: ok, the class of the process's open fault, throttled or restarted.",
    "D marks a process in uninterruptible sleep now. READ/s WRITE/s: what the",
    "process read and wrote (a buffered writer's bytes are its own, not the",
    "flusher's); IOLAT99 IOERR: the requests it submitted; DIRTY: ms paused by",
    "dirty-page throttling. Any key closes this help.",
};

// Redirects spdlog away from the terminal while curses owns it, and prints
// what was logged once the screen is gone.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(64)), saved_(spdlog::default_logger()) {
    auto logger = std::make_shared<spdlog::logger>("faultprobe-top", sink_);
    logger->set_level(saved_->level());
    logger->set_formatter(make_safe_log_formatter("%Y-%m-%dT%H:%M:%S.%e %l %v"));
    spdlog::set_default_logger(logger);
  }
  ~LogCapture() {
    spdlog::set_default_logger(saved_);
    for (const auto& line : sink_->last_formatted()) std::fputs(line.c_str(), stderr);
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> saved_;
};

class Curses {
 public:
  Curses() {
    std::setlocale(LC_ALL, "");  // line drawing and the terminal's encoding as the locale says
    // newterm() rather than initscr(): an unknown $TERM is an error to handle, not an exit.
    screen_ = newterm(nullptr, stdout, stdin);
    if (!screen_) return;
    set_term(screen_);
    cbreak();
    noecho();
    keypad(stdscr, TRUE);
    curs_set(0);
    set_escdelay(25);  // Esc is a key here, not only the start of a sequence
    timeout(100);      // getch() returns ERR after 100 ms: the refresh clock keeps running
    if (has_colors()) {
      start_color();
      use_default_colors();
      init_pair(kFaultColor, COLOR_RED, -1);
      init_pair(kThrottledColor, COLOR_YELLOW, -1);
      init_pair(kRestartedColor, COLOR_CYAN, -1);
      colors = true;
    }
  }
  ~Curses() {
    if (!screen_) return;
    endwin();
    delscreen(screen_);
  }
  Curses(const Curses&) = delete;
  Curses& operator=(const Curses&) = delete;
  bool ok() const { return screen_ != nullptr; }
  bool colors = false;

 private:
  SCREEN* screen_ = nullptr;
};

// `s` cut or padded with blanks to exactly `width` columns.
// Padded or cut to the screen's width in code points (util/text.h): never
// half a UTF-8 sequence, never a raw control byte.
std::string fit(const std::string& s, int width) {
  if (width <= 0) return "";
  return fit_columns(s, size_t(width), true);
}

class Screen {
 public:
  Screen(TopSource& src, const TopOptions& opts) : src_(src), opts_(opts) {
    model_.set_hide_idle(opts.hide_idle);
    if (opts.groups) model_.set_mode(ViewMode::Groups);
  }
  bool ok() const { return curses_.ok(); }
  int run(const volatile std::sig_atomic_t& stop);

 private:
  void fetch();
  void draw();
  void draw_help(int rows, int cols);
  void draw_evidence(int top, int height, int cols);
  // false: quit.
  bool key(int ch);
  bool prompt_key(int ch);
  attr_t row_attr(const ProcessRow& r) const;

  TopSource& src_;
  const TopOptions& opts_;
  Curses curses_;
  TopModel model_;
  bool paused_ = false, help_ = false, evidence_ = false, prompting_ = false;
  std::string prompt_;
  std::string error_;  // the last fetch failure, shown until a fetch works
  int page_ = 10;      // table rows on screen, for PgUp/PgDn
};

int Screen::run(const volatile std::sig_atomic_t& stop) {
  using clock = std::chrono::steady_clock;
  uint64_t frames = 0;
  fetch();
  ++frames;
  draw();
  auto next = clock::now() + opts_.interval;
  while (!stop) {
    if (opts_.count && frames >= opts_.count) break;
    int ch = getch();
    if (ch != ERR) {
      if (!key(ch)) break;
      draw();
    }
    if (clock::now() >= next) {
      next = clock::now() + opts_.interval;
      if (!paused_) {
        fetch();
        ++frames;
      }
      draw();
    }
  }
  return 0;
}

void Screen::fetch() {
  auto v = src_.fetch();
  if (!v) {
    error_ = v.error().message;  // keep the last good view on screen
    return;
  }
  error_.clear();
  model_.set_view(std::move(v).value());
}

attr_t Screen::row_attr(const ProcessRow& r) const {
  if (!curses_.colors) return state_rank(r.state) == StateRank::Fault ? A_BOLD : A_NORMAL;
  switch (state_rank(r.state)) {
    case StateRank::Fault: return COLOR_PAIR(kFaultColor) | A_BOLD;
    case StateRank::Throttled: return COLOR_PAIR(kThrottledColor);
    case StateRank::Restarted: return COLOR_PAIR(kRestartedColor);
    case StateRank::Ok: break;
  }
  return A_NORMAL;
}

void Screen::draw() {
  erase();
  int rows = 0, cols = 0;
  getmaxyx(stdscr, rows, cols);
  int y = 0;
  std::string source = src_.describe() + (paused_ ? "   [paused]" : "");
  const auto header = model_.header_lines(source, kMaxFaultLines);
  for (size_t i = 0; i < header.size() && y < rows - 1; ++i, ++y) {
    // Lines after "faults: N open" list the open faults.
    attr_t a = i >= 3 ? (curses_.colors ? COLOR_PAIR(kFaultColor) : A_BOLD) : A_NORMAL;
    attron(a);
    mvaddnstr(y, 0, fit(header[i], cols).c_str(), cols);
    attroff(a);
  }
  if (!error_.empty() && y < rows - 1) {
    attron(A_BOLD);
    mvaddnstr(y++, 0, fit("! " + error_, cols).c_str(), cols);
    attroff(A_BOLD);
  }
  ++y;
  const int footer = rows - 1;
  if (y < footer) {
    attron(A_REVERSE);
    mvaddnstr(y++, 0, fit(model_.table_header(), cols).c_str(), cols);
    attroff(A_REVERSE);
  }
  int table_end = footer;
  int panel_h = 0;
  if (evidence_) {
    panel_h = std::clamp((footer - y) / 2, 0, 20);
    table_end = footer - panel_h;
  }
  page_ = std::max(1, table_end - y);
  const auto& shown = model_.rows();
  const bool groups = model_.mode() == ViewMode::Groups;
  size_t first = model_.scroll_top(size_t(std::max(0, table_end - y)));
  for (size_t i = first; i < model_.list_size() && y < table_end; ++i, ++y) {
    attr_t a = groups ? (model_.groups()[i]->faulty ? (curses_.colors ? COLOR_PAIR(kFaultColor) : A_BOLD) : A_NORMAL)
                      : row_attr(*shown[i]);
    if (int(i) == model_.selected()) a |= A_REVERSE;
    attron(a);
    mvaddnstr(y, 0, fit(model_.table_row(i), cols).c_str(), cols);
    attroff(a);
  }
  if (panel_h > 0) draw_evidence(table_end, panel_h, cols);

  std::string foot;
  if (prompting_) {
    foot = "filter: " + prompt_;
  } else {
    char buf[64];
    if (groups)
      std::snprintf(buf, sizeof buf, "%zu groups of %zu processes", model_.list_size(), model_.view().procs.size());
    else
      std::snprintf(buf, sizeof buf, "%zu/%zu processes", shown.size(), model_.view().procs.size());
    foot = std::string(buf) + "   q quit  h help  / filter  I idle  C groups  Enter " +
           (groups ? "processes" : "evidence") + "  sort: s c m i r f p";
  }
  mvaddnstr(footer, 0, fit(foot, cols).c_str(), cols);
  if (prompting_) {
    curs_set(1);
    move(footer, std::min(cols - 1, int(8 + prompt_.size())));
  } else {
    curs_set(0);
  }
  if (help_) draw_help(rows, cols);
  refresh();
}

void Screen::draw_evidence(int top, int height, int cols) {
  const ProcessRow* r = model_.selected_row();
  std::string title = "-- fault evidence";
  std::vector<std::string> lines;
  if (!r) {
    lines.push_back("no process selected");
  } else {
    title += " of " + std::to_string(r->pid) + " (" + r->comm + ")";
    std::string ev = model_.selected_evidence();
    if (ev.empty()) {
      lines.push_back("no open fault (state " + r->state + ")");
    } else {
      std::istringstream in(ev);
      for (std::string line; std::getline(in, line);) lines.push_back(line);
    }
  }
  title += " (Enter/Esc closes) ";
  attron(A_BOLD);
  mvaddnstr(top, 0, fit(title + std::string(size_t(std::max(0, cols)), '-'), cols).c_str(), cols);
  attroff(A_BOLD);
  // Below the title: the lines that fit; if some do not, the last row says how many.
  const size_t room = size_t(std::max(0, height - 1));
  const size_t fits = lines.size() <= room ? lines.size() : (room > 0 ? room - 1 : 0);
  for (size_t i = 0; i < fits; ++i) mvaddnstr(top + 1 + int(i), 0, fit(lines[i], cols).c_str(), cols);
  if (fits < lines.size() && room > 0)
    mvaddnstr(top + int(room), 0, ("... " + std::to_string(lines.size() - fits) + " more lines").c_str(), cols);
}

void Screen::draw_help(int rows, int cols) {
  int h = int(std::size(kHelp)) + 2, w = 2;
  for (const char* l : kHelp) w = std::max(w, int(std::string(l).size()) + 4);
  h = std::min(h, rows);
  w = std::min(w, cols);
  WINDOW* win = newwin(h, w, std::max(0, (rows - h) / 2), std::max(0, (cols - w) / 2));
  if (!win) return;
  box(win, 0, 0);
  for (int i = 0; i + 2 < h && size_t(i) < std::size(kHelp); ++i) mvwaddnstr(win, i + 1, 2, kHelp[i], w - 4);
  refresh();
  wrefresh(win);
  delwin(win);
}

bool Screen::prompt_key(int ch) {
  switch (ch) {
    case 27:  // Esc: no filter
      prompt_.clear();
      model_.set_filter("");
      prompting_ = false;
      return true;
    case '\n':
    case '\r':
    case KEY_ENTER:
      prompting_ = false;
      return true;
    case KEY_BACKSPACE:
    case 127:
    case 8:
      if (!prompt_.empty()) prompt_.pop_back();
      break;
    default:
      if (ch >= 32 && ch < 127) prompt_ += char(ch);
      else return true;
  }
  model_.set_filter(prompt_);  // filters as you type
  return true;
}

bool Screen::key(int ch) {
  if (prompting_) return prompt_key(ch);
  if (help_) {  // any key closes the help
    help_ = false;
    return true;
  }
  if (auto k = sort_key_for_key(ch)) {
    model_.set_sort(*k);
    return true;
  }
  switch (ch) {
    case 'q':
    case 'Q': return false;
    case KEY_UP:
    case 'k': model_.move_selection(-1); break;
    case KEY_DOWN:
    case 'j': model_.move_selection(1); break;
    case KEY_PPAGE: model_.move_selection(-page_); break;
    case KEY_NPAGE: model_.move_selection(page_); break;
    case KEY_HOME:
    case 'g': model_.select_first(); break;
    case KEY_END:
    case 'G': model_.select_last(); break;
    case '/':
      prompting_ = true;
      prompt_ = model_.filter();
      break;
    case 27:
      if (evidence_) {
        evidence_ = false;
      } else {
        model_.set_filter("");
        model_.set_group_filter("");
      }
      break;
    case 'I': model_.set_hide_idle(!model_.hide_idle()); break;
    case 'C': model_.set_mode(model_.mode() == ViewMode::Groups ? ViewMode::Processes : ViewMode::Groups); break;
    case ' ': paused_ = !paused_; break;
    case 'h':
    case '?': help_ = true; break;
    case '\n':
    case '\r':
    case KEY_ENTER:
      if (const GroupRow* g = model_.selected_group()) {  // into the group: its processes
        model_.set_filter("");
        model_.set_group_filter(g->name);
        model_.set_mode(ViewMode::Processes);
        model_.select_first();
      } else {
        evidence_ = !evidence_;
      }
      break;
    default: break;  // KEY_RESIZE included: the next draw() reads the new size
  }
  return true;
}

// Sleeps until `until`, waking early when `stop` is set.
void sleep_until(std::chrono::steady_clock::time_point until, const volatile std::sig_atomic_t& stop) {
  while (!stop) {
    auto now = std::chrono::steady_clock::now();
    if (now >= until) return;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - now,
                                                                             std::chrono::milliseconds(50)));
  }
}

}  // namespace

int run_top_screen(TopSource& src, const TopOptions& opts, const volatile std::sig_atomic_t& stop) {
  {
    LogCapture capture;
    Screen screen(src, opts);
    if (screen.ok()) return screen.run(stop);
  }
  const char* term = std::getenv("TERM");
  std::fprintf(stderr, "faultprobe top: cannot drive the terminal (TERM=%s); printing plain frames\n",
               term ? term : "unset");
  return run_top_batch(src, opts, stop);
}

int run_top_batch(TopSource& src, const TopOptions& opts, const volatile std::sig_atomic_t& stop) {
  TopModel model;
  model.set_hide_idle(opts.hide_idle);
  if (opts.groups) model.set_mode(ViewMode::Groups);
  uint64_t frames = 0;
  auto next = std::chrono::steady_clock::now() + opts.interval;
  while (!stop && (opts.count == 0 || frames < opts.count)) {
    // The first frame comes after one interval, so its rates cover one.
    sleep_until(next, stop);
    if (stop) break;
    next += opts.interval;
    auto v = src.fetch();
    if (!v) {
      std::fprintf(stderr, "faultprobe top: %s\n", v.error().message.c_str());
      return 1;
    }
    model.set_view(std::move(v).value());
    std::string frame = model.frame_text(src.describe(), kMaxFaultLines, opts.max_rows);
    if (frames > 0) std::fputs("\n", stdout);
    std::fputs(frame.c_str(), stdout);
    if (std::fflush(stdout) != 0) return 1;  // the reader went away
    ++frames;
  }
  return 0;
}

}  // namespace fp
