// Tresor peer fixture tool: tokenization and greedy decoding exactly as llama.cpp does
// them, for the committed test fixtures under crates/llm/tests/fixtures/.
// Built by scripts/peer/build-llama-cpp.sh, driven by scripts/peer/gen-llm-fixtures.sh
// (which assembles the JSON). All text crosses the process boundary hex-encoded, so
// any byte sequence (newlines, tabs, emoji, NUL-free UTF-8) survives unchanged.
//
//   tresor-llm-fixtures info     MODEL
//       key/value lines: n_vocab, bos, eos, eot, add_bos, add_eos, eog_ids (space-separated)
//   tresor-llm-fixtures meta     MODEL
//       GGUF metadata as "key = value" lines (llama.cpp truncates long values/arrays)
//   tresor-llm-fixtures tokenize MODEL            < lines of HEX(text)
//       per input line: "<ids add_special=false>\t<ids add_special=true>"
//       (parse_special = true for both; ids space-separated, may be empty)
//   tresor-llm-fixtures greedy   MODEL N_NEW      < lines of "ADD_SPECIAL(0|1) HEX(prompt)"
//       per input line, four lines:
//         prompt <ids>             prompt tokenized with parse_special = true
//         gen <ids>                N_NEW argmax tokens (no sampling, no penalties, no
//                                  early stop at end-of-generation tokens)
//         text <HEX>               llama_detokenize(gen, remove_special=false,
//                                  unparse_special=true)
//         margin <floats>          top-1 minus top-2 logit at each generated step
//
// Env: TRESOR_FIXTURE_THREADS (default 2), TRESOR_FIXTURE_VERBOSE=1 keeps llama.cpp logs,
//      TRESOR_FIXTURE_KV=f16|f32 (greedy only; default f16 = llama.cpp's default KV cache
//      type with flash attention auto; f32 = f32 KV cache with flash attention disabled),
//      TRESOR_FIXTURE_FA=auto|on|off overrides the flash-attention choice.
#include "llama.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

static void quiet_log(ggml_log_level level, const char * text, void * /*user*/) {
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static std::string from_hex(const std::string & hex) {
    if (hex.size() % 2 != 0) {
        fprintf(stderr, "odd-length hex input\n");
        exit(2);
    }
    std::string out;
    out.reserve(hex.size() / 2);
    for (size_t i = 0; i < hex.size(); i += 2) {
        out.push_back((char) std::stoi(hex.substr(i, 2), nullptr, 16));
    }
    return out;
}

static std::string to_hex(const std::string & s) {
    static const char * digits = "0123456789abcdef";
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char c : s) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
    }
    return out;
}

static std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text, bool add_special) {
    std::vector<llama_token> ids(text.size() + 8);
    int32_t n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(),
                               add_special, /*parse_special=*/true);
    if (n < 0) {
        if (n == INT32_MIN) {
            fprintf(stderr, "tokenize overflow\n");
            exit(3);
        }
        ids.resize(-n);
        n = llama_tokenize(vocab, text.data(), (int32_t) text.size(), ids.data(), (int32_t) ids.size(),
                           add_special, true);
        if (n < 0) {
            fprintf(stderr, "tokenize failed\n");
            exit(3);
        }
    }
    ids.resize(n);
    return ids;
}

static std::string join(const std::vector<llama_token> & ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); i++) {
        if (i) s += ' ';
        s += std::to_string(ids[i]);
    }
    return s;
}

static std::string detokenize(const llama_vocab * vocab, const std::vector<llama_token> & ids) {
    std::string out(ids.size() * 32 + 16, '\0');
    int32_t n = llama_detokenize(vocab, ids.data(), (int32_t) ids.size(), out.data(), (int32_t) out.size(),
                                 /*remove_special=*/false, /*unparse_special=*/true);
    if (n < 0) {
        out.resize(-n);
        n = llama_detokenize(vocab, ids.data(), (int32_t) ids.size(), out.data(), (int32_t) out.size(), false, true);
    }
    out.resize(n < 0 ? 0 : n);
    return out;
}

static int usage() {
    fprintf(stderr, "usage: tresor-llm-fixtures info|meta|tokenize MODEL  |  greedy MODEL N_NEW (stdin: see source)\n");
    return 1;
}

int main(int argc, char ** argv) {
    if (argc < 3) return usage();
    const std::string mode = argv[1];
    const char * model_path = argv[2];

    const char * verbose = getenv("TRESOR_FIXTURE_VERBOSE");
    if (!(verbose && verbose[0] == '1')) {
        llama_log_set(quiet_log, nullptr);
    }
    const char * thr = getenv("TRESOR_FIXTURE_THREADS");
    const int n_threads = thr ? atoi(thr) : 2;
    const char * kv = getenv("TRESOR_FIXTURE_KV");
    bool kv_f32 = false;
    if (kv && kv[0]) {
        if (strcmp(kv, "f32") == 0) {
            kv_f32 = true;
        } else if (strcmp(kv, "f16") != 0) {
            fprintf(stderr, "TRESOR_FIXTURE_KV must be f16 or f32, got '%s'\n", kv);
            return 1;
        }
    }
    const char * fa = getenv("TRESOR_FIXTURE_FA");
    int fa_override = -2;  // -2: no override
    if (fa && fa[0]) {
        if (strcmp(fa, "auto") == 0) {
            fa_override = LLAMA_FLASH_ATTN_TYPE_AUTO;
        } else if (strcmp(fa, "on") == 0) {
            fa_override = LLAMA_FLASH_ATTN_TYPE_ENABLED;
        } else if (strcmp(fa, "off") == 0) {
            fa_override = LLAMA_FLASH_ATTN_TYPE_DISABLED;
        } else {
            fprintf(stderr, "TRESOR_FIXTURE_FA must be auto, on or off, got '%s'\n", fa);
            return 1;
        }
    }

    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path, mparams);
    if (!model) {
        fprintf(stderr, "failed to load %s\n", model_path);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string line;

    if (mode == "info") {
        printf("n_vocab %d\n", llama_vocab_n_tokens(vocab));
        printf("bos %d\n", llama_vocab_bos(vocab));
        printf("eos %d\n", llama_vocab_eos(vocab));
        printf("eot %d\n", llama_vocab_eot(vocab));
        printf("add_bos %d\n", llama_vocab_get_add_bos(vocab) ? 1 : 0);
        printf("add_eos %d\n", llama_vocab_get_add_eos(vocab) ? 1 : 0);
        printf("eog_ids");
        for (llama_token t = 0; t < llama_vocab_n_tokens(vocab); t++) {
            if (llama_vocab_is_eog(vocab, t)) printf(" %d", t);
        }
        printf("\n");
    } else if (mode == "meta") {
        char key[256], val[512];
        for (int32_t i = 0; i < llama_model_meta_count(model); i++) {
            llama_model_meta_key_by_index(model, i, key, sizeof(key));
            llama_model_meta_val_str_by_index(model, i, val, sizeof(val));
            printf("%s = %s\n", key, val);
        }
    } else if (mode == "tokenize") {
        while (std::getline(std::cin, line)) {
            const std::string text = from_hex(line);
            printf("%s\t%s\n", join(tokenize(vocab, text, false)).c_str(), join(tokenize(vocab, text, true)).c_str());
        }
    } else if (mode == "greedy") {
        if (argc < 4) return usage();
        const int n_new = atoi(argv[3]);
        const int n_vocab = llama_vocab_n_tokens(vocab);
        while (std::getline(std::cin, line)) {
            const size_t sp = line.find(' ');
            if (sp == std::string::npos) {
                fprintf(stderr, "bad greedy input line\n");
                return 2;
            }
            const bool add_special = line.substr(0, sp) == "1";
            const std::string prompt = from_hex(line.substr(sp + 1));
            std::vector<llama_token> prompt_ids = tokenize(vocab, prompt, add_special);

            // Fresh context per prompt: empty KV cache, nothing carried over.
            llama_context_params cparams = llama_context_default_params();
            cparams.n_ctx = (uint32_t) (prompt_ids.size() + n_new + 64);
            cparams.n_batch = cparams.n_ctx;
            cparams.n_ubatch = cparams.n_ctx;
            cparams.n_threads = n_threads;
            cparams.n_threads_batch = n_threads;
            // KV precision / flash attention: llama.cpp's defaults (f16 KV,
            // flash attention auto) unless TRESOR_FIXTURE_KV=f32 (f32 KV, flash
            // attention off); TRESOR_FIXTURE_FA=auto|on|off overrides either.
            // The fixture script decodes with both to find prompts whose greedy
            // output does not depend on llama.cpp's own attention precision.
            if (kv_f32) {
                cparams.type_k = GGML_TYPE_F32;
                cparams.type_v = GGML_TYPE_F32;
                cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
            }
            if (fa_override >= -1) {
                cparams.flash_attn_type = (llama_flash_attn_type) fa_override;
            }
            llama_context * ctx = llama_init_from_model(model, cparams);
            if (!ctx) {
                fprintf(stderr, "failed to create context\n");
                return 1;
            }

            std::vector<llama_token> gen;
            std::vector<float> margins;
            std::vector<llama_token> pending = prompt_ids;
            for (int step = 0; step < n_new; step++) {
                llama_batch batch = llama_batch_get_one(pending.data(), (int32_t) pending.size());
                if (llama_decode(ctx, batch) != 0) {
                    fprintf(stderr, "llama_decode failed at step %d\n", step);
                    return 1;
                }
                const float * logits = llama_get_logits_ith(ctx, -1);
                int best = 0;
                for (int i = 1; i < n_vocab; i++) {
                    if (logits[i] > logits[best]) best = i;  // ties keep the lowest id
                }
                float second = -INFINITY;
                for (int i = 0; i < n_vocab; i++) {
                    if (i != best && logits[i] > second) second = logits[i];
                }
                gen.push_back(best);
                margins.push_back(logits[best] - second);
                pending.assign(1, best);
            }
            llama_free(ctx);

            printf("prompt %s\n", join(prompt_ids).c_str());
            printf("gen %s\n", join(gen).c_str());
            printf("text %s\n", to_hex(detokenize(vocab, gen)).c_str());
            printf("margin");
            for (float m : margins) printf(" %.4f", m);
            printf("\n");
            fflush(stdout);
        }
    } else {
        llama_model_free(model);
        return usage();
    }

    llama_model_free(model);
    llama_backend_free();
    return 0;
}
