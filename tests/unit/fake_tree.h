// A temporary directory tree for tests that stand in for cgroupfs, /proc or
// /sys: put() files, get() them back, removed with the object.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace fp::test {

class FakeTree {
 public:
  FakeTree() {
    std::string tmpl = (std::filesystem::path(::testing::TempDir()) / "fp_tree_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    root_ = tmpl;
  }
  ~FakeTree() {
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }
  FakeTree(const FakeTree&) = delete;
  FakeTree& operator=(const FakeTree&) = delete;

  const std::string& root() const { return root_; }
  std::string path(const std::string& rel) const { return root_ + "/" + rel; }
  // Writes a file, creating its directories.
  void put(const std::string& rel, const std::string& content) const {
    auto p = std::filesystem::path(path(rel));
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << content;
  }
  void mkdir(const std::string& rel) const { std::filesystem::create_directories(path(rel)); }
  bool exists(const std::string& rel) const { return std::filesystem::exists(path(rel)); }
  // The file's content, or "<missing>".
  std::string get(const std::string& rel) const {
    std::ifstream in(path(rel));
    if (!in) return "<missing>";
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  std::string root_;
};

}  // namespace fp::test
