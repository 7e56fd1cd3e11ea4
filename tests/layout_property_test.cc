// Properties of layouts beyond the golden set, on many random valid configs up to world 4,096:
// every kind partitions the world, members ascend, groups ascend by first member (ulysses/ring
// follow SP-group order instead), ulysses x ring compose sp, and the closed forms of
// seed/SEMANTICS.md §5.6 hold for every rank.
#include <algorithm>
#include <random>
#include <set>

#include "common/layout.h"
#include "tests/test_util.h"

namespace cohort {
namespace {

// A random valid config: degrees drawn from small factors while the world stays <= 4096.
ParallelConfig RandomConfig(std::mt19937& rng) {
  ParallelConfig c;
  std::vector<int64_t*> dims = {&c.data_parallel_size,   &c.cfg_parallel_size,
                                &c.ulysses_degree,       &c.ring_degree,
                                &c.tensor_parallel_size, &c.pipeline_parallel_size};
  const int64_t factors[] = {1, 1, 2, 2, 3, 4, 8};
  int64_t world = 1;
  for (int64_t* d : dims) {
    const int64_t f = factors[rng() % std::size(factors)];
    if (world * f <= 4096) {
      *d = f;
      world *= f;
    }
  }
  c.world_size = world;
  // fs: a random divisor of the world, sometimes.
  if (rng() % 3 == 0) {
    std::vector<int64_t> divisors;
    for (int64_t f = 1; f <= world; ++f) {
      if (world % f == 0) divisors.push_back(f);
    }
    c.fully_shard_degree = divisors[rng() % divisors.size()];
  }
  if (rng() % 4 == 0) {
    c.enable_expert_parallel = c.is_moe = true;
    c.ep_layout = rng() % 2 ? EpLayout::kMasked : EpLayout::kSeed;
  }
  return c;
}

struct Coordinates {
  int64_t t, s, p, c, d, u, q;
};

Coordinates Decompose(const ParallelConfig& cfg, int64_t r) {
  const int64_t tp = cfg.tensor_parallel_size, sp = cfg.ulysses_degree * cfg.ring_degree;
  const int64_t pp = cfg.pipeline_parallel_size, cf = cfg.cfg_parallel_size;
  Coordinates x;
  x.t = r % tp;
  r /= tp;
  x.s = r % sp;
  r /= sp;
  x.p = r % pp;
  r /= pp;
  x.c = r % cf;
  x.d = r / cf;
  x.u = x.s % cfg.ulysses_degree;
  x.q = x.s / cfg.ulysses_degree;
  return x;
}

int64_t Compose(const ParallelConfig& cfg, const Coordinates& x) {
  const int64_t tp = cfg.tensor_parallel_size, sp = cfg.ulysses_degree * cfg.ring_degree;
  const int64_t pp = cfg.pipeline_parallel_size, cf = cfg.cfg_parallel_size;
  return x.t + tp * (x.s + sp * (x.p + pp * (x.c + cf * x.d)));
}

// The closed-form group of `kind` holding rank r, and r's index in it.
std::pair<RankList, int> ClosedForm(const ParallelConfig& cfg, GroupKind kind, int r) {
  const Coordinates x = Decompose(cfg, r);
  RankList group;
  int index = 0;
  auto vary = [&](int64_t n, int64_t own, auto set) {
    for (int64_t i = 0; i < n; ++i) {
      Coordinates y = x;
      set(y, i);
      group.push_back(static_cast<int>(Compose(cfg, y)));
    }
    index = static_cast<int>(own);
  };
  const int64_t U = cfg.ulysses_degree, R = cfg.ring_degree;
  switch (kind) {
    case GroupKind::kDp:
      vary(cfg.data_parallel_size, x.d, [](Coordinates& y, int64_t i) { y.d = i; });
      break;
    case GroupKind::kCfg:
      vary(cfg.cfg_parallel_size, x.c, [](Coordinates& y, int64_t i) { y.c = i; });
      break;
    case GroupKind::kPp:
      vary(cfg.pipeline_parallel_size, x.p, [](Coordinates& y, int64_t i) { y.p = i; });
      break;
    case GroupKind::kSp:
      vary(U * R, x.s, [](Coordinates& y, int64_t i) { y.s = i; });
      break;
    case GroupKind::kTp:
      vary(cfg.tensor_parallel_size, x.t, [](Coordinates& y, int64_t i) { y.t = i; });
      break;
    case GroupKind::kUlysses:
      vary(U, x.u, [&](Coordinates& y, int64_t i) { y.s = i + U * x.q; });
      break;
    case GroupKind::kRing:
      vary(R, x.q, [&](Coordinates& y, int64_t i) { y.s = x.u + U * i; });
      break;
    case GroupKind::kFs: {
      const int fs = static_cast<int>(cfg.fully_shard_degree);
      for (int i = 0; i < fs; ++i) group.push_back(r / fs * fs + i);
      index = r % fs;
      break;
    }
    default:
      break;
  }
  return {group, index};
}

TEST(LayoutProperties, RandomConfigsUpToWorld4096) {
  std::mt19937 rng(20261127);
  int checked = 0;
  for (int iteration = 0; iteration < 300; ++iteration) {
    const ParallelConfig cfg = RandomConfig(rng);
    SCOPED_TRACE(cfg.ShortString());
    absl::StatusOr<Layout> layout = Layout::Build(cfg);
    ASSERT_TRUE(layout.ok()) << layout.status();
    const int W = layout->world_size();
    for (GroupKind kind : layout->kinds()) {
      SCOPED_TRACE(std::string(GroupKindName(kind)));
      const RankGroups& groups = layout->groups(kind);
      // Partition: every rank exactly once.
      std::vector<int> seen(W, 0);
      for (const RankList& g : groups) {
        EXPECT_TRUE(std::is_sorted(g.begin(), g.end()));
        EXPECT_EQ(std::adjacent_find(g.begin(), g.end()), g.end());
        for (int r : g) ++seen[r];
      }
      EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), W);
      if (kind != GroupKind::kUlysses && kind != GroupKind::kRing) {
        EXPECT_TRUE(std::is_sorted(
            groups.begin(), groups.end(),
            [](const RankList& a, const RankList& b) { return a.front() < b.front(); }));
      }
    }
    // Ulysses x ring compose sp; ulysses/ring groups follow SP-group order.
    const RankGroups& sp = layout->groups(GroupKind::kSp);
    const int64_t U = cfg.ulysses_degree, R = cfg.ring_degree;
    for (size_t i = 0; i < sp.size(); ++i) {
      std::set<int> from_ulysses;
      for (int64_t j = 0; j < R; ++j) {
        const RankList& u = layout->groups(GroupKind::kUlysses)[i * R + j];
        from_ulysses.insert(u.begin(), u.end());
      }
      EXPECT_EQ(from_ulysses, std::set<int>(sp[i].begin(), sp[i].end()));
      std::set<int> from_ring;
      for (int64_t j = 0; j < U; ++j) {
        const RankList& g = layout->groups(GroupKind::kRing)[i * U + j];
        from_ring.insert(g.begin(), g.end());
      }
      EXPECT_EQ(from_ring, std::set<int>(sp[i].begin(), sp[i].end()));
    }
    // Closed forms, rank by rank.
    for (int r = 0; r < W; ++r) {
      for (GroupKind kind :
           {GroupKind::kDp, GroupKind::kCfg, GroupKind::kPp, GroupKind::kSp, GroupKind::kTp,
            GroupKind::kUlysses, GroupKind::kRing, GroupKind::kFs}) {
        auto [group, index] = ClosedForm(cfg, kind, r);
        ASSERT_EQ(layout->GroupOf(kind, r), group) << GroupKindName(kind) << " of rank " << r;
        ASSERT_EQ(layout->RankInGroup(kind, r), index) << GroupKindName(kind) << " of rank " << r;
      }
      if (cfg.enable_expert_parallel && cfg.ep_layout == EpLayout::kSeed) {
        const int block = W / static_cast<int>(cfg.pipeline_parallel_size);
        ASSERT_EQ(layout->GroupIndexOf(GroupKind::kEp, r), r / block);
        ASSERT_EQ(layout->RankInGroup(GroupKind::kEp, r), r % block);
      }
      if (cfg.enable_expert_parallel && cfg.ep_layout == EpLayout::kMasked) {
        // Masked EP: same pipeline stage across the group.
        for (int member : layout->GroupOf(GroupKind::kEp, r)) {
          ASSERT_EQ(Decompose(cfg, member).p, Decompose(cfg, r).p);
        }
      }
    }
    ++checked;
  }
  EXPECT_EQ(checked, 300);
}

TEST(LayoutProperties, LargestBenchmarkConfig) {
  ParallelConfig cfg{.world_size = 4096,
                     .data_parallel_size = 2,
                     .cfg_parallel_size = 2,
                     .ulysses_degree = 8,
                     .ring_degree = 4,
                     .tensor_parallel_size = 8,
                     .pipeline_parallel_size = 4};
  absl::StatusOr<Layout> layout = Layout::Build(cfg);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->groups(GroupKind::kTp).size(), 512u);
  EXPECT_EQ(layout->groups(GroupKind::kSp).size(), 128u);
  EXPECT_EQ(layout->groups(GroupKind::kUlysses).size(), 512u);
  EXPECT_EQ(layout->groups(GroupKind::kRing).size(), 1024u);
  const RankView v = layout->ViewOf(4095);
  EXPECT_TRUE(v.is_pipeline_last_stage);
  EXPECT_TRUE(v.is_dp_last_group);
  EXPECT_EQ(v.dit_world_size, 4096);
}

}  // namespace
}  // namespace cohort
