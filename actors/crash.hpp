#pragma once

// Turns an exception escaping an actor's handler into a structured log line
// and an error exit (the supervisor or pool then restarts the actor),
// instead of CAF's unstructured default printout.

#include <exception>
#include <string>

#include "actors/messages.hpp"
#include "engine/log.hpp"

namespace balctl {

inline caf::error crash_to_error(const char* kind, const std::string& who,
                                 std::exception_ptr& e) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    what = ex.what();
  } catch (...) {
  }
  log::error("actor_exception", {{"kind", kind}, {"name", who}, {"error", what}});
  return caf::make_error(caf::sec::runtime_error, what);
}

} // namespace balctl
