#include "raid/fault_injecting_io.h"

namespace raidfs {

void FaultInjectingIo::fail_member(uint32_t member, int error) {
  if (member_error_.size() <= member) member_error_.resize(member + 1, 0);
  member_error_[member] = error;
}

void FaultInjectingIo::fail_writes(uint32_t member, int error, uint64_t after, uint64_t begin,
                                   uint64_t end) {
  if (write_faults_.size() <= member) write_faults_.resize(member + 1);
  write_faults_[member] = WriteFault{error, after, begin, end};
}

void FaultInjectingIo::execute(std::span<IoRequest> batch) {
  passed_.clear();
  origin_.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    IoRequest& r = batch[i];
    if (r.member < member_error_.size() && member_error_[r.member] != 0) {
      r.result = -member_error_[r.member];
      continue;
    }
    if (r.op == IoOp::kWrite && r.member < write_faults_.size()) {
      WriteFault& f = write_faults_[r.member];
      if (f.error != 0 && r.offset >= f.begin && r.offset < f.end) {
        if (f.after == 0) {
          r.result = -f.error;
          continue;
        }
        --f.after;
      }
    }
    if (r.op == IoOp::kWrite && dropping_) {
      if (writes_left_ == 0) {
        r.result = static_cast<int32_t>(r.length);  // acknowledged, never stored
        ++dropped_;
        continue;
      }
      --writes_left_;
    }
    passed_.push_back(r);
    origin_.push_back(i);
  }
  inner_.execute(passed_);
  for (size_t j = 0; j < passed_.size(); ++j) batch[origin_[j]].result = passed_[j].result;
}

}  // namespace raidfs
