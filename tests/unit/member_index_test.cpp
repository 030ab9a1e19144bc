#include "engine/member_index.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

TEST_CASE("member ids map to their position in configured order",
          "[member_index][unit]") {
  member_index idx({30, 10, 20});
  CHECK(idx.find(30) == 0u);
  CHECK(idx.find(10) == 1u);
  CHECK(idx.find(20) == 2u);
  CHECK_FALSE(idx.find(40));
  CHECK(idx.size() == 3);
}

TEST_CASE("a duplicated id keeps its first position", "[member_index][unit]") {
  member_index idx({7, 8, 7});
  CHECK(idx.find(7) == 0u);
  CHECK(idx.size() == 2);
}

TEST_CASE("removing a member shifts the positions after it",
          "[member_index][unit]") {
  member_index idx({30, 10, 20, 40});
  CHECK(idx.erase_and_shift(10) == 1u);
  CHECK_FALSE(idx.contains(10));
  CHECK(idx.find(30) == 0u);
  CHECK(idx.find(20) == 1u);
  CHECK(idx.find(40) == 2u);
  CHECK_FALSE(idx.erase_and_shift(10));
}

TEST_CASE("inserting adds a member or moves a known one",
          "[member_index][unit]") {
  member_index idx({5});
  idx.insert(3, 1);
  idx.insert(9, 2);
  CHECK(idx.find(3) == 1u);
  CHECK(idx.find(9) == 2u);
  idx.insert(9, 0);
  CHECK(idx.find(9) == 0u);
  CHECK(idx.size() == 3);
}
