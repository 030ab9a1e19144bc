#pragma once

// The agent's version, reported in every status body (agent_version) so
// the engine can count outdated agents (admin.agent_version_latest).

namespace balctl::agent {

constexpr const char* version = "1.0.0";

} // namespace balctl::agent
