/**
 * The KV store on the command line: `--gpu-kv-budget`, `--kv-int8`,
 * `--recompute` parsed into {@linkcode KvOptions} (errors name the flag),
 * and what `--stats` and `--scheduler-profile` print.
 *
 * @module
 */
import type { Model } from "../api/model.ts";
import {
  type KvOptions,
  type KvStats,
  type KvStepStats,
  parseBytes,
} from "../kv/store.ts";

/** The KV store options of the command line (errors name the flag). */
export function kvOptions(v: {
  "gpu-kv-budget"?: string;
  "kv-int8"?: string;
  recompute?: string;
}): KvOptions {
  const kv: KvOptions = {};
  for (const flag of ["kv-int8", "recompute"] as const) {
    if (v[flag] !== undefined && v["gpu-kv-budget"] === undefined) {
      throw new TypeError(
        `--${flag} applies to a KV budget (tokens that spill): add --gpu-kv-budget SIZE`,
      );
    }
  }
  if (v["gpu-kv-budget"] !== undefined) {
    kv.gpuBytes = parseBytes(v["gpu-kv-budget"], "--gpu-kv-budget");
  }
  if (v["kv-int8"] !== undefined) {
    if (!["on", "off"].includes(v["kv-int8"])) {
      throw new TypeError(
        `--kv-int8: ${JSON.stringify(v["kv-int8"])} is not on or off`,
      );
    }
    kv.int8 = v["kv-int8"] === "on";
  }
  if (v.recompute !== undefined) {
    if (!["auto", "on", "off"].includes(v.recompute)) {
      throw new TypeError(
        `--recompute: ${JSON.stringify(v.recompute)} is not auto, on or off`,
      );
    }
    kv.recompute = v.recompute as KvOptions["recompute"];
  }
  return kv;
}

const fmtBytes = (n: number) =>
  n >= 2 ** 20
    ? `${(n / 2 ** 20).toFixed(2)} MiB`
    : n >= 1024
    ? `${(n / 1024).toFixed(1)} KiB`
    : `${n} B`;

/** The `--stats` summary: the run's totals and each phase change. */
export function formatKvStats(s: KvStats, steps: KvStepStats[]): string {
  const lines = [
    `KV store: ${s.tiered ? "tiered" : "all on the GPU"}, budget ${
      fmtBytes(s.budget_bytes)
    } (allocated ${fmtBytes(s.allocated_gpu_kv_bytes)}, peak held ${
      fmtBytes(s.peak_gpu_kv_bytes)
    }), host tier ${s.int8 ? "INT8" : "f16"}`,
    `plan: p1 ${s.plan.p1 ?? "-"}, p2 ${s.plan.p2 ?? "-"}, alpha ${
      s.plan.alpha.toFixed(3)
    }, beta ${s.plan.beta}`,
    `steps ${s.steps}, phases entered ${
      s.phases_entered.join(", ")
    }; uploaded ${
      fmtBytes(s.uploaded_bytes)
    }, recomputed ${s.recomputed_tokens} token-layers, evictions ${s.evictions}; host peak ${s.host_tokens_peak} token-layers (${
      fmtBytes(s.host_bytes_peak)
    })`,
  ];
  let phase = 0;
  for (const t of steps) {
    if (t.phase === phase) continue;
    phase = t.phase;
    lines.push(
      `  step ${t.step}: phase ${t.phase} (token-layers: GPU ${t.gpuTokens}, host ${t.hostTokens}, recompute ${t.recomputeTokens}; rows ${t.rowsUsed}/${t.rows})`,
    );
  }
  const last = steps[steps.length - 1];
  if (last) {
    lines.push(
      `  end: GPU ${last.gpuTokens}, host ${last.hostTokens}, recompute ${last.recomputeTokens} token-layers; GPU KV ${
        fmtBytes(last.gpuKvBytes)
      }, host ${fmtBytes(last.hostBytes)}`,
    );
  }
  return lines.join("\n");
}

/** What `--scheduler-profile` prints: the device profile and the plan of the run. */
export function formatSchedulerProfile(model: Model): string {
  const kv = model.engine.kv;
  const p = kv.profile;
  return (p
    ? `scheduler profile: upload ${p.uploadGBs.toFixed(3)} GB/s, recompute ${
      p.recomputeMsPerToken.toFixed(4)
    } ms per token-layer, attention ${
      p.attendMsPerToken.toPrecision(3)
    } ms per attended token; x kept for recompute: ${kv.keepX}\nplan: p1 ${kv.plan.p1}, p2 ${kv.plan.p2}, alpha ${
      kv.plan.alpha.toFixed(3)
    }, beta ${kv.plan.beta}${
      kv.planCost
        ? ` (modelled: transfer ${
          kv.planCost.transferMs.toFixed(1)
        } ms, recompute ${kv.planCost.recomputeMs.toFixed(1)} ms, ${
          Math.round(kv.planCost.uploadedRows)
        } rows uploaded)`
        : ""
    }`
    : "scheduler profile: none (no GPU KV budget below what the run needs: everything stays on the GPU)");
}
