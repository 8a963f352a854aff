// Access to the KV pool (src/kv/pool.ts), included by the ops that read or
// write K/V. One pool row holds one token's K and V at one layer, f16
// pairs: K in words [0, kv_dim / 2), V in [kv_dim / 2, kv_dim). Rows are
// shared by all layers and sequences; the row of (layer, slot, pos) comes
// from the layer's part of the row table. A pool larger than one storage
// binding is split into parts of `rows_per_part` rows; the part
// declarations and the switch below are generated for the part count
// (`KV_PARTS`), and KV_ACCESS is `read` or `read_write`.

struct KvLayer {
  table_base: u32,     // first entry of this layer's (slots, ctx) row table (elements)
  ctx: u32,            // positions per slot in the table
  row_words: u32,      // u32 words per pool row (= kv_dim)
  rows_per_part: u32,  // rows per pool part
}

@group(0) @binding(14) var<storage, read> kv_table: array<u32>; // (layers, slots, ctx) pool row of each position
@group(0) @binding(15) var<uniform> kv: KvLayer;
//KV_PART_DECLS

// The pool row holding (slot, pos) at this layer.
fn kv_row(slot: u32, pos: u32) -> u32 {
  return kv_table[kv.table_base + slot * kv.ctx + pos];
}

// Word w of pool row `row`.
fn kv_word(row: u32, w: u32) -> u32 {
  let part = row / kv.rows_per_part;
  let i = (row - part * kv.rows_per_part) * kv.row_words + w;
  //KV_PART_READ
}
