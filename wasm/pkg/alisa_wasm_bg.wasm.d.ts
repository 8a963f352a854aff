/* tslint:disable */
/* eslint-disable */
export const memory: WebAssembly.Memory;
export const dequantizeF16: (a: number, b: number, c: number, d: number, e: number) => void;
export const dequantizeF32: (a: number, b: number, c: number, d: number, e: number) => void;
export const ggmlTypes: () => any;
export const ggufParseHeader: (a: number, b: number, c: number, d: number, e: number) => void;
export const safetensorsParseHeader: (a: number, b: number, c: number, d: number) => void;
export const sentencepieceParse: (a: number, b: number, c: number) => void;
export const __wbindgen_export: (a: number) => void;
export const __wbindgen_export2: () => number;
export const __wbindgen_externrefs: WebAssembly.Table;
export const __wbindgen_add_to_stack_pointer: (a: number) => number;
export const __wbindgen_export3: (a: number, b: number) => number;
export const __wbindgen_export4: (a: number, b: number, c: number) => void;
export const __wbindgen_export5: (a: number) => void;
export const __wbindgen_start: () => void;
