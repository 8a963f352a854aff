/**
 * The WebGPU device: requested with the adapter's real limits (not the
 * defaults), the features alisa can use, and device loss turned into an
 * error that every later call reports instead of hanging.
 *
 * @module
 */

/** Options for {@linkcode openGpu}. */
export interface GpuOptions {
  /** `high-performance` (default) or `low-power`. */
  powerPreference?: GPUPowerPreference;
}

/** A device and what it can do. */
export class Gpu {
  /** Set once the device is lost; every submission then throws it. */
  lost: Error | null = null;
  /** Validation and out-of-memory errors the device reported. */
  readonly errors: string[] = [];
  /** Shader modules by source name. */
  private readonly modules = new Map<string, GPUShaderModule>();
  /** Compute pipelines by a key naming the shader and every override. */
  private readonly pipelines = new Map<string, GPUComputePipeline>();

  /** A CPU rasterizer (llvmpipe, SwiftShader) rather than a GPU. */
  readonly isSoftware: boolean;

  constructor(
    readonly device: GPUDevice,
    readonly adapterInfo: GPUAdapterInfo,
    readonly hasTimestamps: boolean,
  ) {
    this.isSoftware = adapterInfo.isFallbackAdapter ||
      /llvmpipe|lavapipe|swiftshader|softpipe/i.test(adapterInfo.description);
    device.addEventListener("uncapturederror", (e) => {
      const err = (e as GPUUncapturedErrorEvent).error;
      this.errors.push(err.message);
    });
    device.lost.then((info) => {
      this.lost = new Error(
        `The GPU device was lost (${info.reason}): ${info.message}`,
      );
    });
  }

  /** The device's limits. */
  get limits(): GPUSupportedLimits {
    return this.device.limits;
  }

  /** Throws if the device was lost. */
  check(): void {
    if (this.lost) throw this.lost;
    if (this.errors.length) {
      throw new Error(`WebGPU reported an error: ${this.errors[0]}`);
    }
  }

  /**
   * A compute pipeline for `code` (entry point `main`) with `overrides`,
   * cached under a key naming the shader and every override value.
   */
  pipeline(
    name: string,
    code: string,
    overrides: Record<string, number> = {},
  ): GPUComputePipeline {
    const key = `${name}|${
      Object.entries(overrides).sort().map(([k, v]) => `${k}=${v}`).join(",")
    }`;
    let p = this.pipelines.get(key);
    if (p) return p;
    let module = this.modules.get(name);
    if (!module) {
      module = this.device.createShaderModule({ label: name, code });
      this.modules.set(name, module);
    }
    p = this.device.createComputePipeline({
      label: key,
      layout: "auto",
      compute: { module, entryPoint: "main", constants: overrides },
    });
    this.pipelines.set(key, p);
    return p;
  }

  /** A storage buffer, optionally filled with `data`. */
  buffer(
    label: string,
    size: number,
    data?: ArrayBufferView,
    usage = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  ): GPUBuffer {
    const padded = Math.max(16, Math.ceil(size / 16) * 16);
    if (padded > this.limits.maxBufferSize) {
      throw new RangeError(
        `Cannot allocate GPU buffer ${label}: ${padded} bytes exceeds the device's maxBufferSize ${this.limits.maxBufferSize}`,
      );
    }
    const b = this.device.createBuffer({ label, size: padded, usage });
    if (data) {
      const bytes = new Uint8Array(
        data.buffer as ArrayBuffer,
        data.byteOffset,
        data.byteLength,
      );
      // writeBuffer needs a multiple of 4 bytes.
      if (bytes.byteLength % 4 === 0) {
        this.device.queue.writeBuffer(b, 0, bytes);
      } else {
        const tmp = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
        tmp.set(bytes);
        this.device.queue.writeBuffer(b, 0, tmp);
      }
    }
    return b;
  }

  /** A uniform buffer holding `data`. */
  uniform(label: string, data: ArrayBufferView): GPUBuffer {
    const b = this.buffer(
      label,
      data.byteLength,
      data,
      GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    );
    this.uniformSink?.push(b);
    return b;
  }

  /** Where {@linkcode collectUniforms} gathers new uniform buffers. */
  private uniformSink: GPUBuffer[] | null = null;

  /**
   * Runs `build` and returns its result with every uniform buffer it made
   * through {@linkcode uniform}. Dispatch builders (`ops.ts`) make one per
   * dispatch and nothing else holds it: whoever drops the dispatches must
   * destroy these, or each dropped plan leaks its uniforms.
   */
  collectUniforms<T>(build: () => T): { value: T; uniforms: GPUBuffer[] } {
    const outer = this.uniformSink;
    const uniforms: GPUBuffer[] = [];
    this.uniformSink = uniforms;
    try {
      return { value: build(), uniforms };
    } catch (e) {
      for (const b of uniforms) b.destroy();
      throw e;
    } finally {
      this.uniformSink = outer;
    }
  }

  /** Idle staging buffers for readbacks, reused instead of allocated per read. */
  private readonly staging: GPUBuffer[] = [];

  /** Copies `size` bytes of `src` back to the CPU. */
  async read(
    src: GPUBuffer,
    size = src.size,
    offset = 0,
  ): Promise<ArrayBuffer> {
    this.check();
    const bytes = Math.ceil(size / 4) * 4;
    const i = this.staging.findIndex((b) => b.size >= bytes);
    const staging = i >= 0
      ? this.staging.splice(i, 1)[0]
      : this.device.createBuffer({
        label: "staging",
        size: Math.max(256, 2 ** Math.ceil(Math.log2(bytes))),
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
    try {
      const enc = this.device.createCommandEncoder();
      enc.copyBufferToBuffer(src, offset, staging, 0, bytes);
      this.device.queue.submit([enc.finish()]);
      await this.mapOrLost(staging);
      const out = staging.getMappedRange(0, bytes).slice(0, size);
      staging.unmap();
      if (this.staging.length < 8 && staging.size <= 16 << 20) {
        this.staging.push(staging);
      } else staging.destroy();
      return out;
    } catch (e) {
      staging.destroy();
      throw e;
    }
  }

  /** Maps `b` for reading, failing (not hanging) if the device is lost. */
  async mapOrLost(b: GPUBuffer): Promise<void> {
    this.check();
    await Promise.race([
      b.mapAsync(GPUMapMode.READ),
      this.device.lost.then((info) => {
        throw new Error(
          `The GPU device was lost (${info.reason}): ${info.message}`,
        );
      }),
    ]);
  }

  destroy(): void {
    this.device.destroy();
  }
}

/**
 * Opens the GPU. Requests the adapter's own limits for buffer sizes and
 * workgroups, and `timestamp-query` where present.
 */
export async function openGpu(options: GpuOptions = {}): Promise<Gpu> {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new TypeError(
      "WebGPU is not available in this runtime (navigator.gpu is undefined)",
    );
  }
  const adapter = await navigator.gpu.requestAdapter({
    powerPreference: options.powerPreference ?? "high-performance",
  });
  if (!adapter) {
    throw new TypeError(
      "No WebGPU adapter found (on Linux without a GPU, install Mesa's Vulkan driver: apt-get install mesa-vulkan-drivers)",
    );
  }
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: l.maxBufferSize,
    maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
  };
  const hasTimestamps = adapter.features.has("timestamp-query");
  const device = await adapter.requestDevice({
    requiredLimits,
    requiredFeatures: hasTimestamps ? ["timestamp-query"] : [],
  });
  return new Gpu(device, adapter.info, hasTimestamps);
}
