// The C API of io/toml_c.h over toml++ 3.3 (the only file that includes <toml++/toml.h>).
// toml++ may be built with or without exceptions; either way nothing escapes this file:
// every entry point catches everything and turns it into a TomlcStatus and one line.
#include "toml_c.h"

#include <algorithm>
#include <cstdio>
#include <new>
#include <sstream>
#include <string>
#include <vector>

#include <toml++/toml.h>

namespace {

const size_t kTextMax = 80; // values longer than this are shortened in messages

// One flattened key; the strings are owned here and exposed through TomlcEntry.
struct Item {
    std::string path, section, key, string, text;
    std::vector<std::string> strings;
    std::vector<const char *> string_ptrs;
    TomlcKind kind = TOMLC_TABLE;
    int64_t integer = 0;
    double number = 0.0;
    int depth = 0, line = 0, column = 0;
};

// A TOML basic string: "..." with quotes, backslashes and control characters escaped
// (toml++ would print 'literal' strings; messages quote the way users write).
void render_string(std::string_view s, std::ostringstream &os) {
    os << '"';
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            os << '\\' << c;
        } else if (c < 0x20 || c == 0x7f) {
            char esc[8];
            std::snprintf(esc, sizeof esc, "\\u%04x", c);
            os << esc;
        } else {
            os << c;
        }
    }
    os << '"';
}

void render(const toml::node &node, std::ostringstream &os) {
    if (node.is_string()) {
        render_string(node.as_string()->get(), os);
    } else if (node.is_array()) {
        os << '[';
        bool first = true;
        for (const toml::node &el : *node.as_array()) {
            os << (first ? "" : ", ");
            render(el, os);
            first = false;
        }
        os << ']';
    } else if (node.is_table()) {
        os << "{...}";
    } else {
        node.visit([&os](const auto &n) { os << n; });
    }
}

// Renders a value as TOML on one line, shortened, for error messages.
std::string value_text(const toml::node &node) {
    if (node.is_table()) return "a table";
    std::ostringstream os;
    render(node, os);
    std::string s = os.str();
    if (s.size() > kTextMax) s = s.substr(0, kTextMax - 3) + "...";
    return s;
}

void set_kind_and_value(const toml::node &node, Item &item) {
    switch (node.type()) {
    case toml::node_type::table: item.kind = TOMLC_TABLE; break;
    case toml::node_type::string:
        item.kind = TOMLC_STRING;
        item.string = node.as_string()->get();
        break;
    case toml::node_type::integer:
        item.kind = TOMLC_INTEGER;
        item.integer = node.as_integer()->get();
        break;
    case toml::node_type::floating_point:
        item.kind = TOMLC_FLOAT;
        item.number = node.as_floating_point()->get();
        break;
    case toml::node_type::boolean:
        item.kind = TOMLC_BOOL;
        item.integer = node.as_boolean()->get() ? 1 : 0;
        break;
    case toml::node_type::array: {
        const toml::array &arr = *node.as_array();
        if (arr.empty() || arr.is_homogeneous(toml::node_type::string)) {
            item.kind = TOMLC_STRING_ARRAY;
            for (const toml::node &el : arr) item.strings.push_back(el.as_string()->get());
        } else {
            item.kind = TOMLC_OTHER_ARRAY;
        }
        break;
    }
    default: item.kind = TOMLC_DATETIME; break;
    }
}

// Depth-first over a table; tables are listed and descended into, everything else is a leaf.
void flatten(const toml::table &table, const std::vector<std::string> &prefix,
             std::vector<Item> &items) {
    for (auto &&[key, node] : table) {
        std::vector<std::string> parts = prefix;
        parts.emplace_back(key.str());
        Item item;
        for (size_t i = 0; i < parts.size(); i++) item.path += (i ? "." : "") + parts[i];
        item.section = parts.front();
        item.key = parts.back();
        item.depth = static_cast<int>(parts.size());
        const toml::source_region &src = key.source().begin.line ? key.source() : node.source();
        item.line = static_cast<int>(src.begin.line);
        item.column = static_cast<int>(src.begin.column);
        set_kind_and_value(node, item);
        item.text = value_text(node);
        items.push_back(std::move(item));
        if (node.is_table()) flatten(*node.as_table(), parts, items);
    }
}

void format_parse_error(const toml::parse_error &e, const char *source_name, char *err,
                        size_t err_size) {
    std::snprintf(err, err_size, "%s:%u:%u: %.*s", source_name,
                  static_cast<unsigned>(e.source().begin.line),
                  static_cast<unsigned>(e.source().begin.column),
                  static_cast<int>(e.description().size()), e.description().data());
}

} // namespace

struct TomlcDoc {
    std::vector<Item> items;
    std::vector<TomlcEntry> entries;
};

// Fills doc->entries once the items no longer move (the pointers point into them).
static void expose(TomlcDoc &doc) {
    std::stable_sort(doc.items.begin(), doc.items.end(), [](const Item &a, const Item &b) {
        return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    doc.entries.resize(doc.items.size());
    for (size_t i = 0; i < doc.items.size(); i++) {
        Item &it = doc.items[i];
        for (const std::string &s : it.strings) it.string_ptrs.push_back(s.c_str());
        TomlcEntry &e = doc.entries[i];
        e.path = it.path.c_str();
        e.section = it.section.c_str();
        e.key = it.key.c_str();
        e.depth = it.depth;
        e.kind = it.kind;
        e.string = it.string.c_str();
        e.integer = it.integer;
        e.number = it.number;
        e.strings = it.string_ptrs.data();
        e.n_strings = it.string_ptrs.size();
        e.text = it.text.c_str();
        e.line = it.line;
        e.column = it.column;
    }
}

extern "C" TomlcStatus tomlc_parse(const char *text, size_t len, const char *source_name,
                                   TomlcDoc **out, char *err, size_t err_size) {
    *out = nullptr;
    if (err_size) err[0] = '\0';
    TomlcDoc *doc = nullptr;
    try {
        std::string_view view(text, len);
#if TOML_EXCEPTIONS
        toml::table root;
        try {
            root = toml::parse(view, std::string_view(source_name));
        } catch (const toml::parse_error &e) {
            format_parse_error(e, source_name, err, err_size);
            return TOMLC_SYNTAX;
        }
#else
        toml::parse_result result = toml::parse(view, std::string_view(source_name));
        if (!result) {
            format_parse_error(result.error(), source_name, err, err_size);
            return TOMLC_SYNTAX;
        }
        toml::table root = std::move(result).table();
#endif
        doc = new TomlcDoc;
        flatten(root, {}, doc->items);
        expose(*doc);
        *out = doc;
        return TOMLC_OK;
    } catch (const std::bad_alloc &) {
        delete doc;
        std::snprintf(err, err_size, "%s: out of memory parsing TOML", source_name);
        return TOMLC_NOMEM;
    } catch (const std::exception &e) {
        delete doc;
        std::snprintf(err, err_size, "%s: %s", source_name, e.what());
        return TOMLC_SYNTAX;
    } catch (...) {
        delete doc;
        std::snprintf(err, err_size, "%s: unexpected error parsing TOML", source_name);
        return TOMLC_SYNTAX;
    }
}

extern "C" size_t tomlc_count(const TomlcDoc *doc) { return doc->entries.size(); }

extern "C" const TomlcEntry *tomlc_entry(const TomlcDoc *doc, size_t i) {
    return &doc->entries[i];
}

extern "C" void tomlc_free(TomlcDoc *doc) { delete doc; }
