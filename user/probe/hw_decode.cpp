#include "probe/hw_decode.h"

#include <cstdio>
#include <cstring>

#include "faultprobe/abi.h"
#include "probe/event_decode.h"

namespace fp {
namespace {

std::string str(const char* c, size_t cap) { return std::string(c, strnlen(c, cap)); }

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

HwEvent base(const fp_event_hdr& h, HwEvent::Source src) {
  HwEvent e;
  e.source = src;
  e.ts_ns = h.ts_ns;
  e.proc = ProcKey{h.tgid, h.start_ns};
  e.comm = str(h.comm, FP_COMM_LEN);
  return e;
}

HwEvent decode_mce(const fp_mce_event& m) {
  HwEvent e = base(m.hdr, HwEvent::Source::Mce);
  const bool uc = (m.status & FP_MCI_STATUS_UC) != 0;
  e.grade = uc ? HwEvent::Grade::Uncorrected : HwEvent::Grade::Corrected;
  e.device = "cpu " + std::to_string(m.cpu) + " bank " + std::to_string(m.bank);
  auto& f = e.fields;
  f["cpu"] = m.cpu;
  f["bank"] = m.bank;
  f["socket"] = m.socketid;
  f["status"] = hex(m.status);
  f["addr"] = hex(m.addr);
  f["misc"] = hex(m.misc);
  f["mcgstatus"] = hex(m.mcgstatus);
  f["ip"] = hex(m.ip);
  f["uncorrected"] = uc;
  f["pcc"] = (m.status & FP_MCI_STATUS_PCC) != 0;     // processor context corrupt
  f["overflow"] = (m.status & FP_MCI_STATUS_OVER) != 0;
  f["logged_on_cpu"] = m.cur_cpu;
  return e;
}

HwEvent decode_mc(const fp_mc_event& m) {
  HwEvent e = base(m.hdr, HwEvent::Source::Memory);
  switch (m.error_type) {
    case FP_MC_ERR_UNCORRECTED:
    case FP_MC_ERR_FATAL: e.grade = HwEvent::Grade::Uncorrected; break;
    case FP_MC_ERR_CORRECTED:
    case FP_MC_ERR_DEFERRED: e.grade = HwEvent::Grade::Corrected; break;
    default: e.grade = HwEvent::Grade::Info; break;
  }
  std::string label = str(m.label, sizeof m.label);
  std::string where = std::to_string(m.top_layer) + ":" + std::to_string(m.middle_layer) + ":" +
                      std::to_string(m.lower_layer);
  // EDAC says "any memory" when it could not place the error on a DIMM.
  bool placed = !label.empty() && label != "any memory";
  e.device = "mc" + std::to_string(m.mc_index) + " " + (placed ? label : "layers " + where);
  e.count = m.error_count == 0 ? 1 : m.error_count;
  auto& f = e.fields;
  f["mc"] = m.mc_index;
  f["label"] = label;
  f["layers"] = where;
  f["type"] = mc_error_type_name(m.error_type);
  f["count"] = e.count;
  f["address"] = hex(m.address);
  f["grain_bits"] = m.grain_bits;
  f["syndrome"] = hex(m.syndrome);
  f["msg"] = str(m.msg, sizeof m.msg);
  return e;
}

HwEvent decode_aer(const fp_aer_event& a) {
  HwEvent e = base(a.hdr, HwEvent::Source::Pcie);
  e.grade = a.severity == FP_AER_CORRECTABLE ? HwEvent::Grade::Corrected : HwEvent::Grade::Uncorrected;
  std::string dev = str(a.dev_name, sizeof a.dev_name);
  e.device = dev.empty() ? "pci ?" : dev;
  e.fields["pci"] = dev;
  e.fields["severity"] = aer_severity_name(a.severity);
  e.fields["status"] = hex(a.status);
  return e;
}

HwEvent decode_disk(const fp_disk_event& d) {
  HwEvent e = base(d.hdr, HwEvent::Source::Disk);
  e.grade = HwEvent::Grade::Uncorrected;  // the request failed: what the process sees is an error
  std::string disk = str(d.disk, sizeof d.disk);
  std::string devno = std::to_string(d.major) + ":" + std::to_string(d.minor);
  e.device = disk.empty() ? devno : disk;
  if (!d.submitter_known) {
    e.proc = ProcKey{};
    e.comm.clear();
  }
  auto& f = e.fields;
  f["disk"] = disk;
  f["dev"] = devno;
  f["sector"] = d.sector;
  f["error"] = blk_status_name(d.error);
  f["op"] = d.op == 0 ? "read" : d.op == 1 ? "write" : "op " + std::to_string(d.op);
  f["bytes"] = d.nr_bytes;
  f["source"] = d.source == FP_DISK_FROM_RQ_ERROR ? "block_rq_error" : "block_rq_complete";
  if (d.submitter_known) {
    f["pid"] = d.hdr.tgid;
    f["comm"] = e.comm;
  }
  return e;
}

HwEvent decode_thermal(const fp_thermal_event& t) {
  HwEvent e = base(t.hdr, HwEvent::Source::Thermal);
  std::string zone = str(t.zone, sizeof t.zone);
  e.device = "thermal_zone" + std::to_string(t.zone_id) + (zone.empty() ? "" : " (" + zone + ")");
  auto& f = e.fields;
  f["zone"] = zone;
  f["zone_id"] = t.zone_id;
  if (t.kind == FP_THERMAL_TRIP) {
    f["kind"] = "trip";
    f["trip"] = t.trip;
    f["trip_type"] = trip_type_name(t.trip_type);
    // Hot and critical trips precede a shutdown; active/passive ones mean cooling or throttling.
    e.grade = t.trip_type == FP_TRIP_HOT || t.trip_type == FP_TRIP_CRITICAL ? HwEvent::Grade::Uncorrected
                                                                             : HwEvent::Grade::Corrected;
  } else {
    f["kind"] = "temperature";
    f["temp_c"] = double(t.temp_mc) / 1000.0;
    f["temp_prev_c"] = double(t.temp_prev_mc) / 1000.0;
    e.grade = HwEvent::Grade::Info;
  }
  return e;
}

}  // namespace

const char* hw_source_name(HwEvent::Source s) {
  switch (s) {
    case HwEvent::Source::Mce: return "mce";
    case HwEvent::Source::Memory: return "memory";
    case HwEvent::Source::Pcie: return "pcie";
    case HwEvent::Source::Disk: return "disk";
    case HwEvent::Source::Thermal: return "thermal";
  }
  return "?";
}

std::string blk_status_name(int status) {
  // include/linux/blk_types.h; stable since v4.13.
  switch (status) {
    case 1: return "notsupp";
    case 2: return "timeout";
    case 3: return "nospc";
    case 4: return "transport";
    case 5: return "target";
    case 7: return "medium";
    case 8: return "protection";
    case 9: return "resource";
    case 10: return "ioerr";
    default: return "status " + std::to_string(status);
  }
}

const char* mc_error_type_name(uint32_t t) {
  switch (t) {
    case FP_MC_ERR_CORRECTED: return "corrected";
    case FP_MC_ERR_UNCORRECTED: return "uncorrected";
    case FP_MC_ERR_DEFERRED: return "deferred";
    case FP_MC_ERR_FATAL: return "fatal";
    default: return "info";
  }
}

const char* aer_severity_name(uint32_t s) {
  switch (s) {
    case FP_AER_NONFATAL: return "nonfatal";
    case FP_AER_FATAL: return "fatal";
    case FP_AER_CORRECTABLE: return "correctable";
    default: return "unknown";
  }
}

const char* trip_type_name(uint32_t t) {
  switch (t) {
    case FP_TRIP_ACTIVE: return "active";
    case FP_TRIP_PASSIVE: return "passive";
    case FP_TRIP_HOT: return "hot";
    case FP_TRIP_CRITICAL: return "critical";
    default: return "unknown";
  }
}

bool is_hw_event_type(uint32_t type) { return type >= FP_EV_HW_MCE && type <= FP_EV_HW_THERMAL; }

bool decode_hw_event(const void* data, size_t size, EventBatch& out) {
  fp_event_hdr h;
  if (!read_record(data, size, h)) return false;
  switch (h.type) {
    case FP_EV_HW_MCE: return append_as<fp_mce_event>(data, size, out.hw, decode_mce);
    case FP_EV_HW_MEMORY: return append_as<fp_mc_event>(data, size, out.hw, decode_mc);
    case FP_EV_HW_PCIE: return append_as<fp_aer_event>(data, size, out.hw, decode_aer);
    case FP_EV_HW_DISK: return append_as<fp_disk_event>(data, size, out.hw, decode_disk);
    case FP_EV_HW_THERMAL: return append_as<fp_thermal_event>(data, size, out.hw, decode_thermal);
    default: return false;
  }
}

}  // namespace fp
