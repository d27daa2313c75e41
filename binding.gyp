# The CPU addon: what node-gyp-build compiles when no prebuild fits, and what prebuildify packs.
# Never -march=native: each ISA file is built in its own static library with its own flags and
# chosen at run time by cpuid (native/core/cpu_features.cc).
{
  "variables": {
    "tf_version": "<!(node -p \"require('./package.json').version\")"
  },
  "target_defaults": {
    "include_dirs": [
      "<!(node -p \"require('node-addon-api').include_dir\")",
      "native/include"
    ],
    "defines": [
      "NAPI_VERSION=8",
      "NAPI_CPP_EXCEPTIONS",
      "NODE_ADDON_API_DISABLE_DEPRECATED",
      "TENSORFUSE_VERSION=\"<(tf_version)\""
    ],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "cflags": ["-O3", "-fvisibility=hidden"],
    "cflags_cc": ["-std=c++17", "-fexceptions", "-O3"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "MACOSX_DEPLOYMENT_TARGET": "11.0",
      "OTHER_CFLAGS": ["-O3"]
    },
    "msvs_settings": {
      "VCCLCompilerTool": { "ExceptionHandling": 1, "AdditionalOptions": ["/std:c++17", "/O2"] }
    }
  },
  "targets": [
    {
      "target_name": "tensorfuse_isa_x86_avx2",
      "type": "static_library",
      "sources": [
        "native/core/x86_f16c.cc",
        "native/cpu/gemm/gemm_x86_avx2.cc",
        "native/cpu/gemm/gemm_x86_avx512.cc",
        "native/cpu/gemm/gemm_x86_amx.cc",
        "native/cpu/attention/attention_x86_avx2.cc",
        "native/cpu/attention/attention_x86_avx512.cc",
        "native/cpu/attention/attention_x86_amx.cc",
        "native/cpu/moe/moe_x86_avx2.cc",
        "native/cpu/prune/prune_x86_avx2.cc",
        "native/cpu/prune/prune_x86_avx512.cc",
        "native/cpu/quant/quant_x86_avx2.cc",
        "native/cpu/quant/quant_x86_avx512.cc",
        "native/cpu/quant/quant_x86_amx.cc",
        "native/cpu/quant/quant_float_x86_amx.cc",
        "native/cpu/probe/probe_x86_avx2.cc",
        "native/cpu/probe/probe_x86_avx512.cc"
      ],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags": ["-mavx2", "-mfma", "-mf16c"],
          "xcode_settings": { "OTHER_CFLAGS": ["-mavx2", "-mfma", "-mf16c"] },
          "msvs_settings": { "VCCLCompilerTool": { "AdditionalOptions": ["/arch:AVX2"] } }
        }]
      ]
    },
    {
      "target_name": "tensorfuse",
      "dependencies": ["tensorfuse_isa_x86_avx2"],
      "sources": [
        "native/core/status.cc",
        "native/core/threadpool.cc",
        "native/core/cpu_features.cc",
        "native/core/scratch.cc",
        "native/core/convert.cc",
        "native/cpu/gemm/gemm_driver.cc",
        "native/cpu/gemm/gemm_generic.cc",
        "native/cpu/gemm/gemm_arm_neon.cc",
        "native/cpu/moe/route.cc",
        "native/cpu/moe/dispatch.cc",
        "native/cpu/moe/ffn.cc",
        "native/cpu/moe/moe_generic.cc",
        "native/napi/moe.cc",
        "native/cpu/probe/probe.cc",
        "native/napi/napi_util.cc",
        "native/napi/addon.cc",
        "native/napi/backend.cc",
        "native/napi/tensor.cc",
        "native/napi/gemm.cc",
        "native/cpu/attention/attention_driver.cc",
        "native/cpu/attention/attention_generic.cc",
        "native/cpu/attention/attention_arm_neon.cc",
        "native/napi/attention.cc",
        "native/cpu/prune/prune_generic.cc",
        "native/cpu/prune/prune_driver.cc",
        "native/cpu/prune/prune_format.cc",
        "native/napi/prune.cc",
        "native/cpu/quant/quant_driver.cc",
        "native/cpu/quant/quant_rows.cc",
        "native/cpu/quant/quant_strips.cc",
        "native/cpu/quant/quant_generic.cc",
        "native/napi/quant.cc"
      ],
      "conditions": [
        ["OS=='linux'", { "libraries": ["-lpthread"] }]
      ]
    }
  ]
}
