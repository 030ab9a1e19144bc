#include "engine/features.hpp"

#include <catch2/catch.hpp>

using namespace balctl;

TEST_CASE("protection and managed dns unlock on generic pools with two or "
          "more cpanel members",
          "[features][unit]") {
  auto [cpanel_members, unlocked] = GENERATE(table<std::size_t, bool>({
    {0, false},
    {1, false},
    {2, true},
    {5, true},
  }));
  CAPTURE(cpanel_members);
  auto f = compute_features(pool_preset::generic_linux, cpanel_members);
  CHECK(f.protection == unlocked);
  CHECK(f.managed_dns == unlocked);
  CHECK(f.overview);
  CHECK(f.monitoring);
  CHECK(f.settings);
}

TEST_CASE("haproxy pools never show protection or managed dns",
          "[features][unit]") {
  auto cpanel_members = GENERATE(as<std::size_t>{}, 0, 1, 2, 10);
  CAPTURE(cpanel_members);
  auto f = compute_features(pool_preset::haproxy, cpanel_members);
  CHECK_FALSE(f.protection);
  CHECK_FALSE(f.managed_dns);
  CHECK(f.overview);
  CHECK(f.monitoring);
  CHECK(f.settings);
}
