// Runs an operation with the trainer's file-system identity (setfsuid/setfsgid, this thread
// only), so the init reads what the trainer made as the trainer would and needs no CAP_DAC_*.
// A change of fsuid clears the parent-death signal (prctl(2)): it is armed again after.
#pragma once

#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/types.h>

namespace cordon::sandbox {

template <class Op>
auto AsFsUser(uid_t uid, gid_t gid, Op op) {
  int death_signal = 0;
  (void)prctl(PR_GET_PDEATHSIG, &death_signal);
  setfsgid(gid);
  setfsuid(uid);
  auto result = op();
  setfsuid(0);
  setfsgid(0);
  if (death_signal != 0) (void)prctl(PR_SET_PDEATHSIG, death_signal);
  return result;
}

}  // namespace cordon::sandbox
