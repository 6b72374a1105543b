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

// Loads either from a file (path) or from bytes (data, size); name is for messages.
static nq_status load(const char *path, const void *data, size_t size, const char *name, SpModel **out) {
    *out = nullptr;
    try {
        SpModel *sp = new SpModel;
        sentencepiece::util::Status const status =
            path ? sp->processor.Load(path)
                 : sp->processor.LoadFromSerializedProto(
                       absl::string_view(static_cast<const char *>(data), size));
        if (!status.ok()) {
            delete sp;
            // SentencePiece's own text is a source location and a protobuf call.
            if (status.code() == sentencepiece::util::StatusCode::kNotFound)
                return nq_fail(NQ_ERR_INPUT, "%s: cannot open: %s", name, first_line(status.message()).c_str());
            return nq_fail(NQ_ERR_INPUT, "%s: not a SentencePiece model (the file does not parse as a ModelProto)", name);
        }
        if (sp->processor.GetPieceSize() <= 0) {
            delete sp;
            return nq_fail(NQ_ERR_INPUT, "%s: SentencePiece model has no pieces", name);
        }
        *out = sp;
        return NQ_OK;
    } catch (const std::bad_alloc &) {
        return nq_fail(NQ_ERR_RUNTIME, "%s: out of memory loading the SentencePiece model", name);
    } catch (const std::exception &e) {
        return nq_fail(NQ_ERR_INPUT, "%s: not a SentencePiece model (%s)", name, first_line(e.what()).c_str());
    }
}

extern "C" nq_status sp_model_load(const char *path, SpModel **out) {
    return load(path, nullptr, 0, path, out);
}

extern "C" nq_status sp_model_load_bytes(const void *data, size_t size, const char *name, SpModel **out) {
    return load(nullptr, data, size, name, out);
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

extern "C" float sp_model_score(const SpModel *sp, int id) {
    if (id < 0 || id >= sp->processor.GetPieceSize()) return 0;
    return sp->processor.GetScore(id);
}

extern "C" int sp_model_kind(const SpModel *sp, int id) {
    if (id < 0 || id >= sp->processor.GetPieceSize()) return TOKEN_KIND_UNUSED;
    if (sp->processor.IsUnknown(id)) return TOKEN_KIND_UNKNOWN;
    if (sp->processor.IsControl(id)) return TOKEN_KIND_CONTROL;
    if (sp->processor.IsUnused(id)) return TOKEN_KIND_UNUSED;
    if (sp->processor.IsByte(id)) return TOKEN_KIND_BYTE;
    return TOKEN_KIND_NORMAL;
}
