// Which checkpoint a restore starts from: suspect checkpoints (taken while a
// fault was open) are skipped; a restore that brought the fault back falls
// back to an older checkpoint, then to a clean start.
#include "act/restore_choice.h"

#include <gtest/gtest.h>

namespace fp {
namespace {

using Time = RestoreChoice::Time;

Time at(int s) { return Time{} + std::chrono::seconds(1000 + s); }
CheckpointEntry ck(int s) { return {"/ckpt/" + std::to_string(s), at(s)}; }

TEST(RestoreChoice, NewestWhenNothingIsMarked) {
  RestoreChoice c;
  auto p = c.choose({ck(1), ck(2), ck(3)});
  ASSERT_TRUE(p.checkpoint);
  EXPECT_EQ(p.checkpoint->path, "/ckpt/3");
  EXPECT_EQ(p.source, RestoreChoice::Source::Newest);
  EXPECT_EQ(p.why, "");
}

TEST(RestoreChoice, NoCheckpointIsACleanStart) {
  RestoreChoice c;
  auto p = c.choose({});
  EXPECT_FALSE(p.checkpoint);
  EXPECT_EQ(p.source, RestoreChoice::Source::Clean);
  EXPECT_EQ(p.why, "no complete checkpoint");
}

TEST(RestoreChoice, CheckpointsTakenWhileAFaultWasOpenAreSkipped) {
  RestoreChoice c;
  c.fault_open(at(2));
  // taken at 2 and 3, while the fault is open: suspect
  EXPECT_TRUE(c.suspect(ck(2)));
  EXPECT_TRUE(c.suspect(ck(3)));
  EXPECT_FALSE(c.suspect(ck(1)));
  auto p = c.choose({ck(1), ck(2), ck(3)});
  ASSERT_TRUE(p.checkpoint);
  EXPECT_EQ(p.checkpoint->path, "/ckpt/1");
  EXPECT_EQ(p.why, "skipped 2 suspect (taken while a fault was open)");
  // the window closes at 4: a checkpoint taken at 5 is good again, the ones inside stay suspect
  c.fault_closed(at(4));
  EXPECT_FALSE(c.faulty());
  EXPECT_TRUE(c.suspect(ck(3)));
  EXPECT_FALSE(c.suspect(ck(5)));
  EXPECT_EQ(c.choose({ck(1), ck(2), ck(3), ck(5)}).checkpoint->path, "/ckpt/5");
  EXPECT_EQ(c.marked({ck(1), ck(2), ck(3), ck(5)}), (std::vector<std::string>{"/ckpt/2", "/ckpt/3"}));
}

// A restore that could not even run (criu failed or timed out) falls to the
// next rung at once: the oldest checkpoint to trust before it, else none.
TEST(RestoreChoice, TheRungAfterAFailedRestoreIsTheOldestTrustedOlderOne) {
  RestoreChoice c;
  c.fault_open(at(1));
  c.fault_closed(at(1));  // ck(1) is suspect
  auto older = c.older_than(ck(4), {ck(1), ck(2), ck(3), ck(4)});
  ASSERT_TRUE(older);
  EXPECT_EQ(older->checkpoint->path, "/ckpt/2");
  EXPECT_EQ(older->source, RestoreChoice::Source::Older);
  EXPECT_EQ(older->why, "the restore of /ckpt/4 failed");
  EXPECT_FALSE(c.older_than(ck(2), {ck(1), ck(2), ck(3)}));  // only a suspect one before it
  EXPECT_FALSE(c.older_than(ck(1), {ck(1)}));
}

TEST(RestoreChoice, OnlySuspectCheckpointsMeanACleanStart) {
  RestoreChoice c;
  c.fault_open(at(0));
  auto p = c.choose({ck(1), ck(2)});
  EXPECT_FALSE(p.checkpoint);
  EXPECT_EQ(p.source, RestoreChoice::Source::Clean);
  EXPECT_EQ(p.why, "no checkpoint left to trust: skipped 2 suspect (taken while a fault was open)");
}

// The checkpoint taken while the fault was developing (before it was
// detected) brings it back: older checkpoint, then clean start, then nothing.
TEST(RestoreChoice, FallsBackToTheOldestThenToACleanStart) {
  RestoreChoice c;
  std::vector<CheckpointEntry> all{ck(1), ck(2), ck(3), ck(4)};
  auto first = c.choose(all);
  ASSERT_EQ(first.checkpoint->path, "/ckpt/4");
  c.used(first);
  // the replacement wrote a checkpoint of its own (5) before the fault came back
  all.push_back(ck(5));
  auto next = c.did_not_hold(all);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, "an older checkpoint, /ckpt/1");
  EXPECT_TRUE(c.bad(ck(4)));
  EXPECT_TRUE(c.bad(ck(5)));
  EXPECT_FALSE(c.bad(ck(3)));
  auto second = c.choose(all);
  ASSERT_TRUE(second.checkpoint);
  EXPECT_EQ(second.checkpoint->path, "/ckpt/1");  // the oldest kept, not the next older one
  EXPECT_EQ(second.source, RestoreChoice::Source::Older);
  EXPECT_EQ(second.why, "the newer ones brought the fault back");
  c.used(second);

  next = c.did_not_hold(all);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, "a clean start (the older checkpoint brought the fault back too)");
  auto third = c.choose(all);
  EXPECT_FALSE(third.checkpoint);
  EXPECT_EQ(third.source, RestoreChoice::Source::Clean);
  c.used(third);
  // a clean start that brings the fault back leaves nothing to fall back to
  EXPECT_FALSE(c.did_not_hold(all));
  EXPECT_FALSE(c.choose(all).checkpoint);
}

TEST(RestoreChoice, NoOlderCheckpointGoesStraightToACleanStart) {
  RestoreChoice c;
  std::vector<CheckpointEntry> all{ck(1)};
  c.used(c.choose(all));
  auto next = c.did_not_hold(all);
  ASSERT_TRUE(next);
  EXPECT_EQ(*next, "a clean start (no older checkpoint left to trust)");
}

TEST(RestoreChoice, AHeldRestoreStartsOverFromTheNewestGoodOne) {
  RestoreChoice c;
  std::vector<CheckpointEntry> all{ck(1), ck(2), ck(3)};
  c.used(c.choose(all));
  ASSERT_TRUE(c.did_not_hold(all));
  c.used(c.choose(all));  // /ckpt/1
  c.held();
  all.push_back(ck(10));  // written by the healthy replacement
  auto p = c.choose(all);
  ASSERT_TRUE(p.checkpoint);
  EXPECT_EQ(p.checkpoint->path, "/ckpt/10");
  EXPECT_EQ(p.source, RestoreChoice::Source::Newest);
  EXPECT_EQ(p.why, "skipped 1 that brought the fault back");  // /ckpt/3 stays marked
}

TEST(RestoreChoice, AVerdictWithoutARestoreChangesNothing) {
  RestoreChoice c;
  EXPECT_FALSE(c.did_not_hold({ck(1)}));
  EXPECT_EQ(c.choose({ck(1)}).checkpoint->path, "/ckpt/1");
}

}  // namespace
}  // namespace fp
