#include "engine/runtime.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

TEST_CASE("a member's slot and runtime share one allocation and one lifetime",
          "[runtime][unit]") {
  auto m = make_member(7, "web-7.example.test", "web-7",
                       member_fsm(detection_params{}, member_state::pending, 0));
  CHECK(m.slot->id == 7);
  CHECK(m.slot->hostname == "web-7.example.test");
  CHECK(m.rt->slot == m.slot.get());
  CHECK(m.slot.use_count() == 2); // one control block behind both pointers
  std::weak_ptr<member_slot> weak = m.slot;
  m.slot.reset();
  // The runtime keeps the block, so its plain slot pointer stays valid.
  CHECK_FALSE(weak.expired());
  CHECK(m.rt->slot->hostname == "web-7.example.test");
  m.rt.reset();
  CHECK(weak.expired());
}

TEST_CASE("a friendly name equal to the hostname is not stored twice",
          "[runtime][unit]") {
  auto same = make_member(1, "db-1.example.test", "db-1.example.test",
                          member_fsm(detection_params{}, member_state::pending, 0));
  CHECK(same.rt->name == nullptr);
  CHECK(same.rt->display_name() == "db-1.example.test");
  auto other = make_member(2, "db-2.example.test", "primary database",
                           member_fsm(detection_params{}, member_state::pending, 0));
  REQUIRE(other.rt->name != nullptr);
  CHECK(other.rt->display_name() == "primary database");
}
