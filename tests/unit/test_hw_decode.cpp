// The hardware decoders against payloads built the way bpf/hw.bpf.c fills
// them (the abi structs byte for byte), and the hwmon reader against a fake
// /sys/class/hwmon tree.
#include <gtest/gtest.h>

#include <filesystem>
#include <cstring>

#include "detect/rate_window.h"
#include "event_payload.h"
#include "fake_tree.h"
#include "faultprobe/abi.h"
#include "probe/hw_decode.h"
#include "probe/hwmon.h"

namespace fp {
namespace {

using test::hdr;

template <typename T>
HwEvent decode_one(const T& ev) {
  EventBatch b;
  EXPECT_TRUE(decode_hw_event(&ev, sizeof ev, b));
  EXPECT_EQ(b.hw.size(), 1u);
  return b.hw.empty() ? HwEvent{} : b.hw[0];
}

TEST(HwDecode, CorrectedMachineCheckNamesCpuAndBank) {
  fp_mce_event m{};
  hdr(m.hdr, FP_EV_HW_MCE);
  m.status = FP_MCI_STATUS_VAL | FP_MCI_STATUS_EN | 0x9ull;  // no UC: corrected
  m.addr = 0x1234000;
  m.cpu = 1;
  m.bank = 4;
  m.cur_cpu = 0;
  HwEvent e = decode_one(m);
  EXPECT_EQ(e.source, HwEvent::Source::Mce);
  EXPECT_EQ(e.grade, HwEvent::Grade::Corrected);
  EXPECT_EQ(e.device, "cpu 1 bank 4");
  EXPECT_EQ(e.fields["cpu"], 1);
  EXPECT_EQ(e.fields["bank"], 4);
  EXPECT_EQ(e.fields["addr"], "0x1234000");
  EXPECT_EQ(e.fields["uncorrected"], false);
  EXPECT_EQ(e.proc.tgid, 0u);
}

TEST(HwDecode, UncorrectedMachineCheckWithTheProcessOnTheCpu) {
  fp_mce_event m{};
  hdr(m.hdr, FP_EV_HW_MCE, 4242, 77, "dbserver");
  m.status = FP_MCI_STATUS_VAL | FP_MCI_STATUS_UC | FP_MCI_STATUS_EN | FP_MCI_STATUS_PCC;
  m.cpu = 3;
  m.bank = 0;
  HwEvent e = decode_one(m);
  EXPECT_EQ(e.grade, HwEvent::Grade::Uncorrected);
  EXPECT_EQ(e.fields["pcc"], true);
  EXPECT_EQ(e.proc.tgid, 4242u);
  EXPECT_EQ(e.proc.start_ns, 77u);
  EXPECT_EQ(e.comm, "dbserver");
}

TEST(HwDecode, EdacErrorsByTypeWithTheDimmLabel) {
  fp_mc_event m{};
  hdr(m.hdr, FP_EV_HW_MEMORY);
  m.error_type = FP_MC_ERR_CORRECTED;
  m.error_count = 3;
  m.mc_index = 0;
  m.top_layer = 0;
  m.middle_layer = 1;
  m.lower_layer = -1;
  m.address = 0xdead000;
  std::strcpy(m.label, "CPU_SrcID#0_Ha#0_Chan#1_DIMM#0");
  std::strcpy(m.msg, "memory read error");
  HwEvent e = decode_one(m);
  EXPECT_EQ(e.grade, HwEvent::Grade::Corrected);
  EXPECT_EQ(e.device, "mc0 CPU_SrcID#0_Ha#0_Chan#1_DIMM#0");
  EXPECT_EQ(e.count, 3u);
  EXPECT_EQ(e.fields["type"], "corrected");
  EXPECT_EQ(e.fields["layers"], "0:1:-1");
  EXPECT_EQ(e.fields["msg"], "memory read error");

  m.error_type = FP_MC_ERR_FATAL;
  m.error_count = 0;  // EDAC reports 0 for "one"
  std::strcpy(m.label, "any memory");
  e = decode_one(m);
  EXPECT_EQ(e.grade, HwEvent::Grade::Uncorrected);
  EXPECT_EQ(e.device, "mc0 layers 0:1:-1");  // not placed on a DIMM: the location
  EXPECT_EQ(e.count, 1u);
  EXPECT_EQ(e.fields["type"], "fatal");

  m.error_type = FP_MC_ERR_INFO;
  EXPECT_EQ(decode_one(m).grade, HwEvent::Grade::Info);
}

TEST(HwDecode, AerSeverities) {
  fp_aer_event a{};
  hdr(a.hdr, FP_EV_HW_PCIE);
  std::strcpy(a.dev_name, "0000:03:00.0");
  a.status = 0x40;
  a.severity = FP_AER_CORRECTABLE;
  HwEvent e = decode_one(a);
  EXPECT_EQ(e.device, "0000:03:00.0");
  EXPECT_EQ(e.grade, HwEvent::Grade::Corrected);
  EXPECT_EQ(e.fields["severity"], "correctable");
  EXPECT_EQ(e.fields["status"], "0x40");
  a.severity = FP_AER_NONFATAL;
  EXPECT_EQ(decode_one(a).grade, HwEvent::Grade::Uncorrected);
  a.severity = FP_AER_FATAL;
  EXPECT_EQ(decode_one(a).fields["severity"], "fatal");
}

TEST(HwDecode, DiskErrorNamesTheDiskAndTheSubmitter) {
  fp_disk_event d{};
  hdr(d.hdr, FP_EV_HW_DISK, 999, 123, "reader");
  d.sector = 2048;
  d.major = 253;
  d.minor = 0;
  d.error = 10;
  d.nr_bytes = 4096;
  d.op = 0;
  d.source = FP_DISK_FROM_RQ_ERROR;
  d.submitter_known = 1;
  std::strcpy(d.disk, "dm-0");
  HwEvent e = decode_one(d);
  EXPECT_EQ(e.source, HwEvent::Source::Disk);
  EXPECT_EQ(e.grade, HwEvent::Grade::Uncorrected);
  EXPECT_EQ(e.device, "dm-0");
  EXPECT_EQ(e.proc.tgid, 999u);
  EXPECT_EQ(e.fields["dev"], "253:0");
  EXPECT_EQ(e.fields["error"], "ioerr");
  EXPECT_EQ(e.fields["op"], "read");
  EXPECT_EQ(e.fields["sector"], 2048);
  EXPECT_EQ(e.fields["pid"], 999);
  EXPECT_EQ(e.fields["comm"], "reader");
  EXPECT_EQ(e.fields["source"], "block_rq_error");

  // Not seen starting: no submitter, and a disk without a name is its numbers.
  d.submitter_known = 0;
  d.disk[0] = 0;
  d.source = FP_DISK_FROM_RQ_COMPLETE;
  e = decode_one(d);
  EXPECT_EQ(e.proc.tgid, 0u);
  EXPECT_EQ(e.device, "253:0");
  EXPECT_FALSE(e.fields.contains("pid"));
  EXPECT_EQ(e.fields["source"], "block_rq_complete");
  EXPECT_EQ(blk_status_name(42), "status 42");
}

TEST(HwDecode, ThermalTemperatureAndTrips) {
  fp_thermal_event t{};
  hdr(t.hdr, FP_EV_HW_THERMAL);
  t.kind = FP_THERMAL_TEMPERATURE;
  t.zone_id = 2;
  t.temp_mc = 97500;
  t.temp_prev_mc = 96000;
  std::strcpy(t.zone, "x86_pkg_temp");
  HwEvent e = decode_one(t);
  EXPECT_EQ(e.grade, HwEvent::Grade::Info);
  EXPECT_EQ(e.device, "thermal_zone2 (x86_pkg_temp)");
  EXPECT_DOUBLE_EQ(e.fields["temp_c"].get<double>(), 97.5);
  t.kind = FP_THERMAL_TRIP;
  t.trip = 1;
  t.trip_type = FP_TRIP_CRITICAL;
  e = decode_one(t);
  EXPECT_EQ(e.grade, HwEvent::Grade::Uncorrected);
  EXPECT_EQ(e.fields["trip_type"], "critical");
  t.trip_type = FP_TRIP_PASSIVE;
  EXPECT_EQ(decode_one(t).grade, HwEvent::Grade::Corrected);
}

TEST(HwDecode, ShortOrForeignPayloadsAreRefused) {
  fp_disk_event d{};
  hdr(d.hdr, FP_EV_HW_DISK);
  EventBatch b;
  EXPECT_FALSE(decode_hw_event(&d, sizeof d - 1, b));
  EXPECT_FALSE(decode_hw_event(&d, 8, b));
  fp_hang_event h{};
  hdr(h.hdr, FP_EV_HANG);
  EXPECT_FALSE(decode_hw_event(&h, sizeof h, b));
  EXPECT_TRUE(b.hw.empty());
  EXPECT_TRUE(is_hw_event_type(FP_EV_HW_MCE));
  EXPECT_FALSE(is_hw_event_type(FP_EV_HANG));
}

// ---- the corrected-error rate logic ----------------------------------------

TEST(RateWindow, CountsOnlyTheWindow) {
  constexpr uint64_t s = 1'000'000'000ull;
  RateWindow r;
  r.add(100 * s, 1);
  r.add(110 * s, 2);
  r.add(110 * s, 1);
  EXPECT_EQ(r.count(120 * s, 60 * s), 4u);
  EXPECT_EQ(r.count(165 * s, 60 * s), 3u);  // the one at 100 s is out
  EXPECT_EQ(r.count(170 * s, 60 * s), 0u);  // (110, 170]: none
  EXPECT_TRUE(r.empty());
  r.add(200 * s, 5);
  r.add(150 * s, 1);  // out of order: counted as the newest
  EXPECT_EQ(r.count(200 * s, 10 * s), 6u);
}

// ---- hwmon ------------------------------------------------------------------

struct Hwmon : ::testing::Test {
  test::FakeTree tree;
  void chip(const std::string& dir, const std::string& name) { tree.put(dir + "/name", name + "\n"); }
};

TEST_F(Hwmon, ReadsTemperaturesAndVoltagesWithTheirLimits) {
  chip("hwmon0", "coretemp");
  tree.put("hwmon0/temp1_input", "45000\n");
  tree.put("hwmon0/temp1_max", "80000\n");
  tree.put("hwmon0/temp1_crit", "100000\n");
  tree.put("hwmon0/temp1_label", "Package id 0\n");
  chip("hwmon1", "nct6775");
  tree.put("hwmon1/in0_input", "1200\n");
  tree.put("hwmon1/in0_min", "1100\n");
  tree.put("hwmon1/in0_max", "1300\n");
  tree.put("hwmon1/fan1_input", "900\n");  // not ours
  HwmonReader r(tree.root());
  HwmonScan s = r.scan();
  ASSERT_EQ(s.readings.size(), 2u);
  EXPECT_TRUE(s.problems.empty());
  const SensorReading& t = s.readings[0];
  EXPECT_EQ(t.sensor, "coretemp/temp1");
  EXPECT_EQ(t.label, "Package id 0");
  EXPECT_DOUBLE_EQ(t.value, 45.0);
  EXPECT_DOUBLE_EQ(*t.max, 80.0);
  EXPECT_DOUBLE_EQ(*t.crit, 100.0);
  EXPECT_FALSE(t.min.has_value());  // a missing limit file is no limit
  EXPECT_FALSE(limit_crossed(t).has_value());
  const SensorReading& v = s.readings[1];
  EXPECT_EQ(v.kind, SensorReading::Kind::Voltage);
  EXPECT_EQ(v.sensor, "nct6775/in0");
  EXPECT_DOUBLE_EQ(v.value, 1.2);
  EXPECT_FALSE(limit_crossed(v).has_value());
}

TEST_F(Hwmon, LimitsCrossed) {
  SensorReading r;
  r.value = 85;
  r.max = 80.0;
  r.crit = 100.0;
  auto c = limit_crossed(r);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->critical);
  EXPECT_EQ(c->limit, "max");
  r.value = 100;
  c = limit_crossed(r);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->critical);
  EXPECT_EQ(c->limit, "crit");
  SensorReading v;
  v.kind = SensorReading::Kind::Voltage;
  v.value = 0.9;
  v.min = 1.1;
  v.lcrit = 1.0;
  c = limit_crossed(v);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->critical);
  EXPECT_EQ(c->limit, "lcrit");
  v.value = 1.05;
  EXPECT_EQ(limit_crossed(v)->limit, "min");
  SensorReading unset;  // max = 0: "not set" on many chips
  unset.value = 40;
  unset.max = 0.0;
  EXPECT_FALSE(limit_crossed(unset));
}

TEST_F(Hwmon, GarbageIsCountedNotRead) {
  chip("hwmon0", "acpitz");
  tree.put("hwmon0/temp1_input", "banana\n");
  tree.put("hwmon0/temp2_input", "\n");
  tree.put("hwmon0/temp3_input", "99999999\n");  // 99999 C: not a temperature
  tree.put("hwmon0/temp4_input", "30000\n");
  tree.mkdir("hwmon0/temp5_input");              // unreadable (EISDIR)
  HwmonReader r(tree.root());
  HwmonScan s = r.scan();
  ASSERT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.readings[0].sensor, "acpitz/temp4");
  EXPECT_EQ(s.garbage, 4u);
  EXPECT_EQ(s.problems.size(), 4u);
  EXPECT_EQ(r.garbage_total(), 4u);
}

TEST_F(Hwmon, VanishedSensorsAndChipsAreReportedOnce) {
  chip("hwmon0", "coretemp");
  tree.put("hwmon0/temp1_input", "40000\n");
  tree.put("hwmon0/temp2_input", "41000\n");
  chip("hwmon1", "drivetemp");
  tree.put("hwmon1/temp1_input", "35000\n");
  HwmonReader r(tree.root());
  EXPECT_EQ(r.scan().readings.size(), 3u);
  std::filesystem::remove(tree.path("hwmon0/temp2_input"));
  std::filesystem::remove_all(tree.path("hwmon1"));  // the disk was unplugged
  HwmonScan s = r.scan();
  EXPECT_EQ(s.readings.size(), 1u);
  EXPECT_EQ(s.vanished, 2u);
  EXPECT_EQ(r.scan().vanished, 0u);  // said once
  EXPECT_EQ(r.vanished_total(), 2u);
}

TEST_F(Hwmon, MissingRootIsNoSensorsNotAnError) {
  HwmonReader r(tree.path("nope"));
  HwmonScan s = r.scan();
  EXPECT_TRUE(s.readings.empty());
  EXPECT_TRUE(s.problems.empty());
}

}  // namespace
}  // namespace fp
