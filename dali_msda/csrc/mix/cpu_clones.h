// Host loops compiled twice, for AVX2 and the x86-64 baseline (SSE2), the loader picking one for
// the CPU it runs on (GCC's target_clones): the CPU backend's span loops (cpu_rows.h) and FMix's
// noise words (philox_words.h). The same IEEE operations either way (no FMA: contraction is
// off), so the results do not depend on the CPU.

#ifndef DALI_MSDA_CSRC_MIX_CPU_CLONES_H_
#define DALI_MSDA_CSRC_MIX_CPU_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MSDA_X86_DISPATCH 1
#define MSDA_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MSDA_X86_DISPATCH 0
#define MSDA_CPU_CLONES
#endif

#endif  // DALI_MSDA_CSRC_MIX_CPU_CLONES_H_
