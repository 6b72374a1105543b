// The only file that includes SentencePiece headers: a C API over SentencePieceProcessor.
// No C++ exception crosses into C: every entry point catches and reports nq_status.
// status.h is a C header without extern "C" guards.
extern "C" {
#include "status.h"
}
#include "sentencepiece_c.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct SpModel {
    sentencepiece::SentencePieceProcessor processor;
};

// SentencePiece messages may span lines; keep the first so errors stay one line.
static std::string first_line(const std::string &s) {
    size_t const nl = s.find('\n');
    return nl == std::string::npos ? s : s.substr(0, nl);
}

extern "C" nq_status sp_model_load(const char *path, SpModel **out) {
    *out = nullptr;
    try {
        SpModel *sp = new SpModel;
        sentencepiece::util::Status const status = sp->processor.Load(path);
        if (!status.ok()) {
            delete sp;
            return nq_fail(NQ_ERR_INPUT, "%s: not a SentencePiece model (%s)", path,
                           first_line(status.ToString()).c_str());
        }
        if (sp->processor.GetPieceSize() <= 0) {
            delete sp;
            return nq_fail(NQ_ERR_INPUT, "%s: SentencePiece model has no pieces", path);
        }
        *out = sp;
        return NQ_OK;
    } catch (const std::bad_alloc &) {
        return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory loading the SentencePiece model", path);
    } catch (const std::exception &e) {
        return nq_fail(NQ_ERR_INPUT, "%s: not a SentencePiece model (%s)", path, first_line(e.what()).c_str());
    }
}

extern "C" void sp_model_free(SpModel *sp) { delete sp; }

extern "C" int sp_model_vocab_size(const SpModel *sp) { return sp->processor.GetPieceSize(); }
extern "C" int sp_model_bos_id(const SpModel *sp) { return sp->processor.bos_id(); }
extern "C" int sp_model_eos_id(const SpModel *sp) { return sp->processor.eos_id(); }

extern "C" nq_status sp_model_encode(const SpModel *sp, const char *text, size_t len, int **ids,
                                     size_t *n_ids) {
    *ids = nullptr;
    *n_ids = 0;
    try {
        std::vector<int> pieces;
        sentencepiece::util::Status const status =
            sp->processor.Encode(std::string(text, len), &pieces);
        if (!status.ok())
            return nq_fail(NQ_ERR_INPUT, "sentencepiece: cannot encode %zu bytes of text (%s)", len,
                           first_line(status.ToString()).c_str());
        int *copy = static_cast<int *>(nq_calloc(pieces.size() + 1, sizeof(int), "token ids"));
        if (!copy) return NQ_ERR_RUNTIME;
        if (!pieces.empty()) std::memcpy(copy, pieces.data(), pieces.size() * sizeof(int));
        *ids = copy;
        *n_ids = pieces.size();
        return NQ_OK;
    } catch (const std::bad_alloc &) {
        return nq_fail(NQ_ERR_RUNTIME, "sentencepiece: out of memory encoding %zu bytes", len);
    }
}

extern "C" const char *sp_model_id_to_piece(const SpModel *sp, int id) {
    if (id < 0 || id >= sp->processor.GetPieceSize()) return "";
    return sp->processor.IdToPiece(id).c_str();
}

extern "C" int sp_model_is_byte(const SpModel *sp, int id) {
    if (id < 0 || id >= sp->processor.GetPieceSize()) return 0;
    return sp->processor.IsByte(id) ? 1 : 0;
}
