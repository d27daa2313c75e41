// A minimal ONNX model writer: just enough protobuf to build the peer graphs of the benchmark
// (MatMul, Gemm, Cast) in code, without a dependency on onnx-proto / protobufjs.
//
// Field numbers and types from onnx/onnx.proto (proto2, checked against the upstream file):
//   ModelProto          ir_version=1 (int64), producer_name=2, producer_version=3, graph=7,
//                       opset_import=8 (OperatorSetIdProto)
//   OperatorSetIdProto  domain=1 (string), version=2 (int64)
//   GraphProto          node=1, name=2, initializer=5 (TensorProto), input=11, output=12
//                       (ValueInfoProto)
//   NodeProto           input=1, output=2 (repeated string), name=3, op_type=4, attribute=5,
//                       domain=7
//   AttributeProto      name=1, f=2 (float), i=3 (int64), s=4 (bytes), ints=8, type=20 (enum:
//                       FLOAT=1, INT=2, STRING=3, INTS=7)
//   ValueInfoProto      name=1, type=2 (TypeProto)
//   TypeProto           tensor_type=1 (TypeProto.Tensor: elem_type=1 int32, shape=2)
//   TensorShapeProto    dim=1 (Dimension: dim_value=1 int64 | dim_param=2 string)
//   TensorProto         dims=1 (int64, written unpacked, which proto2 parsers accept for
//                       either encoding), data_type=2, name=8, raw_data=9 (little-endian)
// Wire format (protobuf encoding spec): key = field << 3 | wire type; 0 = varint,
// 2 = length-delimited, 5 = 32-bit.

/** TensorProto.DataType values. */
export const ONNX_DTYPE = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, float16: 10, float64: 11, bfloat16: 16 };

const utf8 = new TextEncoder();

/** Accumulates protobuf fields; `finish()` returns the bytes of the message. */
class Writer {
  constructor() {
    this.chunks = [];
    this.length = 0;
  }
  push(bytes) {
    this.chunks.push(bytes);
    this.length += bytes.length;
  }
  varint(value) {
    const out = [];
    if (typeof value === 'bigint' || value < 0) {
      // int64 two's complement: 10 bytes for negatives.
      let v = BigInt.asUintN(64, BigInt(value));
      while (v >= 0x80n) {
        out.push(Number(v & 0x7fn) | 0x80);
        v >>= 7n;
      }
      out.push(Number(v));
    } else {
      if (!Number.isSafeInteger(value)) throw new Error(`onnx writer: ${value} is not a safe integer`);
      let v = value;
      while (v >= 0x80) {
        out.push((v % 0x80) | 0x80);
        v = Math.floor(v / 0x80);
      }
      out.push(v);
    }
    this.push(Uint8Array.from(out));
  }
  key(field, wire) {
    this.varint(field * 8 + wire);
  }
  int(field, value) {
    this.key(field, 0);
    this.varint(value);
  }
  float(field, value) {
    this.key(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.push(b);
  }
  bytes(field, bytes) {
    this.key(field, 2);
    this.varint(bytes.length);
    this.push(bytes);
  }
  string(field, s) {
    this.bytes(field, utf8.encode(s));
  }
  message(field, writer) {
    this.bytes(field, writer.finish());
  }
  finish() {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

/** ValueInfoProto of a tensor; a dim may be a number or a symbolic name. */
function valueInfo(name, dtype, dims) {
  const shape = new Writer();
  for (const d of dims) {
    const dim = new Writer();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensorType = new Writer();
  tensorType.int(1, ONNX_DTYPE[dtype]);
  tensorType.message(2, shape);
  const type = new Writer();
  type.message(1, tensorType);
  const vi = new Writer();
  vi.string(1, name);
  vi.message(2, type);
  return vi;
}

/** TensorProto with raw little-endian data (x86/arm hosts are little-endian). */
function tensorProto(name, dtype, dims, data) {
  const t = new Writer();
  for (const d of dims) t.int(1, d);
  t.int(2, ONNX_DTYPE[dtype]);
  t.string(8, name);
  t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return t;
}

function attribute(name, value) {
  const a = new Writer();
  a.string(1, name);
  if (typeof value === 'number' && Number.isInteger(value)) {
    a.int(3, value);
    a.int(20, 2); // INT
  } else if (typeof value === 'number') {
    a.float(2, value);
    a.int(20, 1); // FLOAT
  } else if (typeof value === 'string') {
    a.string(4, value);
    a.int(20, 3); // STRING
  } else if (Array.isArray(value)) {
    for (const v of value) a.int(8, v);
    a.int(20, 7); // INTS
  } else throw new Error(`onnx writer: unsupported attribute ${name}`);
  return a;
}

/**
 * Serializes a one-graph model.
 *   nodes:        [{ op, inputs: string[], outputs: string[], attrs?: {name: value}, domain? }]
 *   inputs:       [{ name, dtype, dims }]      dims entries: number or symbolic string
 *   outputs:      [{ name, dtype, dims }]
 *   initializers: [{ name, dtype, dims, data: TypedArray }]
 *   opset:        default opset version (ai.onnx)
 * Returns the ModelProto bytes, ready for InferenceSession.create(bytes).
 *   domains:      extra opset imports, e.g. [{ domain: 'com.microsoft', version: 1 }] (MatMulNBits)
 */
export function buildModel({ nodes, inputs, outputs, initializers = [], opset = 17, name = 'bench', domains = [] }) {
  const graph = new Writer();
  nodes.forEach((n, i) => {
    const node = new Writer();
    for (const x of n.inputs) node.string(1, x);
    for (const y of n.outputs) node.string(2, y);
    node.string(3, `${n.op.toLowerCase()}_${i}`);
    node.string(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) node.message(5, attribute(k, v));
    if (n.domain) node.string(7, n.domain);
    graph.message(1, node);
  });
  graph.string(2, name);
  for (const t of initializers) graph.message(5, tensorProto(t.name, t.dtype, t.dims, t.data));
  for (const v of inputs) graph.message(11, valueInfo(v.name, v.dtype, v.dims));
  for (const v of outputs) graph.message(12, valueInfo(v.name, v.dtype, v.dims));

  const opsetId = new Writer();
  opsetId.string(1, '');
  opsetId.int(2, opset);

  const model = new Writer();
  model.int(1, 8); // IR version 8 (ONNX 1.10+), enough for opset 17
  model.string(2, 'tensorfuse-bench');
  model.string(3, '0');
  model.message(7, graph);
  model.message(8, opsetId);
  for (const d of domains) {
    const extra = new Writer();
    extra.string(1, d.domain);
    extra.int(2, d.version);
    model.message(8, extra);
  }
  return model.finish();
}

// ---- Attention peers: com.microsoft MultiHeadAttention and GroupQueryAttention ----------------
// (bench/attention.mjs). Schemas from onnxruntime's docs/ContribOperators.md:
//   MultiHeadAttention   inputs query (B, S, H*D), key, value (B, Skv, H*D), bias, key_padding_mask,
//                        attention_bias, past_key, past_value (B, H, Spast, D: BNSH),
//                        past_sequence_length, cache_indirection; outputs output (B, S, H*D),
//                        present_key, present_value (B, H, Spast + Skv, D); attrs num_heads,
//                        unidirectional (causal), scale, mask_filter_value. key / value may also
//                        be given in BNSH (B, H, Skv, D) with no past: the cross-attention cache form.
//   GroupQueryAttention  inputs query (B, S, Hq*D), key, value (B, S, Hk*D), past_key, past_value
//                        (B, Hk, Spast, D), seqlens_k int32 (B) = total length - 1,
//                        total_sequence_length int32 scalar, [cos_cache, sin_cache, ...]; outputs
//                        output, present_key, present_value; attrs num_heads, kv_num_heads
//                        (causal always in the versions that have no `causal` attribute).
// Both ops live in the 'com.microsoft' domain, which needs its own opset_import entry; an
// empty string stands for an optional input that is left out.

/** The ModelProto of buildModel(spec) with one more opset_import: { domain, version }. */
export function withOpsetImport(modelBytes, domain, version) {
  // A repeated field may be appended to a serialized message: protobuf parsers merge the
  // concatenation, so this adds an entry to ModelProto.opset_import (field 8).
  const id = new Writer();
  id.string(1, domain);
  id.int(2, version);
  const tail = new Writer();
  tail.message(8, id);
  const extra = tail.finish();
  const out = new Uint8Array(modelBytes.length + extra.length);
  out.set(modelBytes, 0);
  out.set(extra, modelBytes.length);
  return out;
}

/** buildModel(spec) for a graph that uses com.microsoft contrib ops (opset version 1). */
export function buildContribModel(spec) {
  return withOpsetImport(buildModel(spec), 'com.microsoft', 1);
}

/**
 * com.microsoft MultiHeadAttention. Modes:
 *   'bsh'   query / key / value (B, S, H*D) graph inputs (prefill); causal -> unidirectional = 1
 *   'past'  decode with a cache: query / key / value (B, Sq, H*D) for the new tokens and
 *           past_key / past_value (B, H, pastSeq, D) inputs; outputs present_key / present_value
 *           (B, H, pastSeq + Sq, D), which the CPU kernel fills by copying the cache
 *   'bnsh'  query (B, Sq, H*D), key / value (B, H, Skv, D) as is (the cached form, no concat)
 * Returns the model bytes; feeds are named query, key, value, past_key, past_value.
 */
export function mhaModel({
  mode = 'bsh',
  batch = 1,
  seqQ,
  seqKv,
  pastSeq = 0,
  numHeads,
  headDim,
  causal = false,
  dtype = 'float32',
}) {
  const hidden = numHeads * headDim;
  const inputs = [{ name: 'query', dtype, dims: [batch, seqQ, hidden] }];
  const outputs = [{ name: 'output', dtype, dims: [batch, seqQ, hidden] }];
  const nodeInputs = ['query', 'key', 'value'];
  const nodeOutputs = ['output'];
  if (mode === 'bnsh') {
    inputs.push({ name: 'key', dtype, dims: [batch, numHeads, seqKv, headDim] });
    inputs.push({ name: 'value', dtype, dims: [batch, numHeads, seqKv, headDim] });
  } else {
    inputs.push({ name: 'key', dtype, dims: [batch, seqKv, hidden] });
    inputs.push({ name: 'value', dtype, dims: [batch, seqKv, hidden] });
  }
  if (mode === 'past') {
    nodeInputs.push('', '', '', 'past_key', 'past_value');
    inputs.push({ name: 'past_key', dtype, dims: [batch, numHeads, pastSeq, headDim] });
    inputs.push({ name: 'past_value', dtype, dims: [batch, numHeads, pastSeq, headDim] });
    const total = pastSeq + seqKv;
    nodeOutputs.push('present_key', 'present_value');
    outputs.push({ name: 'present_key', dtype, dims: [batch, numHeads, total, headDim] });
    outputs.push({ name: 'present_value', dtype, dims: [batch, numHeads, total, headDim] });
  }
  const attrs = { num_heads: numHeads };
  if (causal) attrs.unidirectional = 1;
  return buildContribModel({
    nodes: [{ op: 'MultiHeadAttention', domain: 'com.microsoft', inputs: nodeInputs, outputs: nodeOutputs, attrs }],
    inputs,
    outputs,
  });
}

/**
 * com.microsoft GroupQueryAttention (causal): query (B, S, Hq*D), key / value (B, S, Hk*D) for
 * the new tokens, optional past_key / past_value (B, Hk, pastSeq, D); seqlens_k int32 (B) and
 * total_sequence_length int32 scalar are graph inputs (feed pastSeq + S - 1 and pastSeq + S).
 * Outputs output, present_key, present_value (B, Hk, pastSeq + S, D).
 */
export function gqaModel({ batch = 1, seq, pastSeq = 0, numHeads, kvNumHeads, headDim, dtype = 'float32' }) {
  const inputs = [
    { name: 'query', dtype, dims: [batch, seq, numHeads * headDim] },
    { name: 'key', dtype, dims: [batch, seq, kvNumHeads * headDim] },
    { name: 'value', dtype, dims: [batch, seq, kvNumHeads * headDim] },
  ];
  const nodeInputs = ['query', 'key', 'value'];
  if (pastSeq > 0) {
    nodeInputs.push('past_key', 'past_value');
    inputs.push({ name: 'past_key', dtype, dims: [batch, kvNumHeads, pastSeq, headDim] });
    inputs.push({ name: 'past_value', dtype, dims: [batch, kvNumHeads, pastSeq, headDim] });
  } else nodeInputs.push('', '');
  nodeInputs.push('seqlens_k', 'total_sequence_length');
  inputs.push({ name: 'seqlens_k', dtype: 'int32', dims: [batch] });
  inputs.push({ name: 'total_sequence_length', dtype: 'int32', dims: [] });
  const total = pastSeq + seq;
  const outputs = [
    { name: 'output', dtype, dims: [batch, seq, numHeads * headDim] },
    { name: 'present_key', dtype, dims: [batch, kvNumHeads, total, headDim] },
    { name: 'present_value', dtype, dims: [batch, kvNumHeads, total, headDim] },
  ];
  return buildContribModel({
    nodes: [
      {
        op: 'GroupQueryAttention',
        domain: 'com.microsoft',
        inputs: nodeInputs,
        outputs: ['output', 'present_key', 'present_value'],
        attrs: { num_heads: numHeads, kv_num_heads: kvNumHeads },
      },
    ],
    inputs,
    outputs,
  });
}
// ---- end of the attention peers --------------------------------------------------------------
