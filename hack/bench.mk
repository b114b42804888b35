# Benchmark and chaos targets; included from the Makefile.
# Both run `pbr-bench` (crates/vpn-pbr-harness) on release binaries, with their
# own control plane, emulator and operator processes; see docs/benchmarks.md.

BENCH_ARGS ?=
CHAOS_ARGS ?=
# The binaries just built (the harness's defaults assume the target dir is ./target).
BENCH_BINS = --operator $(TARGET_DIR)/release/vpn-pbr-operator --emulator $(TARGET_DIR)/release/vpc-emulator

.PHONY: bench chaos

bench: tools ## Benchmark: N=1000/G=20/T=2s with baseline, 10,000-route scale run, 50,000-route large run (2,500 gateways, API rate 100/s), 5000-route restart run, 3 accounts at 10/20/40 calls/s (pbr-bench bench --only picks some); rewrites docs/benchmarks.md

	$(CARGO) build --release --locked --bins
	source <(hack/tools.sh --env) && $(TARGET_DIR)/release/pbr-bench bench $(BENCH_BINS) --out docs/benchmarks.md $(BENCH_ARGS)

chaos: tools ## 1000 routes on 8 gateways (three list pages each), 20% faults, operator SIGKILLed every 15 s, one apiserver restart; fails on any violation
	$(CARGO) build --release --locked --bins
	source <(hack/tools.sh --env) && $(TARGET_DIR)/release/pbr-bench chaos $(BENCH_BINS) $(CHAOS_ARGS)
