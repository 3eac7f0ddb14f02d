/*
 * state_diagrams.c - the core's state tables as Mermaid state diagrams.
 *
 *   state_diagrams                 print them (make -C csrc state-diagrams)
 *   state_diagrams --write FILE    put them in FILE between the markers
 *   state_diagrams --check FILE    exit 1 when FILE's copy differs (make test)
 *
 * The diagrams are printed from the very tables set_state() consults
 * (gb_dev_moves in device.c, gb_bind_moves in registrar.c), so the docs
 * cannot drift from the code unnoticed.
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "registrar.h"

#define BEGIN "<!-- state-diagrams: begin (make -C csrc state-diagrams-docs) -->\n"
#define END "<!-- state-diagrams: end -->\n"

typedef const char *(*name_fn)(int);

static const char *dev_name(int s)
{
    return gb_dev_state_name((gb_dev_state)s);
}

static const char *bind_name(int s)
{
    return gb_bind_state_name((gb_bind_state)s);
}

/* One machine: a heading, then the diagram; `first` is the state a record
 * starts in, the states from `gone` up to `count` end it. */
static void diagram(FILE *out, const char *title, const gb_state_move *moves, size_t n,
                    name_fn name, int first, int gone, int count)
{
    fprintf(out, "%s\n\n```mermaid\nstateDiagram-v2\n", title);
    fprintf(out, "    [*] --> %s\n", name(first));
    for (size_t k = 0; k < n; k++)
        fprintf(out, "    %s --> %s: %s\n", name(moves[k].from), name(moves[k].to), moves[k].on);
    for (int s = gone; s < count; s++)
        fprintf(out, "    %s --> [*]\n", name(s));
    fprintf(out, "```\n");
}

static void diagrams(FILE *out)
{
    fputs(BEGIN, out);
    diagram(out, "Device (`gb_dev_moves`, csrc/core/device.c):", gb_dev_moves, gb_dev_nmoves,
            dev_name, GB_DEV_IDLE, GB_DEV_STATE__COUNT, GB_DEV_STATE__COUNT);
    fputs("\n", out);
    diagram(out, "Registrar binding (`gb_bind_moves`, csrc/core/registrar.c):", gb_bind_moves,
            gb_bind_nmoves, bind_name, GB_BIND_NONE, GB_BIND_UNREGISTERED, GB_BIND_STATE__COUNT);
    fputs(END, out);
}

/* The whole of a file, NUL-terminated; NULL when unreadable. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        buf[n] = '\0';
        *len = (size_t)n;
    } else {
        free(buf);
        buf = NULL;
    }
    if (f)
        fclose(f);
    return buf;
}

int main(int argc, char **argv)
{
    if (argc == 1) {
        diagrams(stdout);
        return 0;
    }
    if (argc != 3 || (strcmp(argv[1], "--check") && strcmp(argv[1], "--write"))) {
        fprintf(stderr, "usage: %s [--check FILE | --write FILE]\n", argv[0]);
        return 2;
    }
    size_t len;
    char *doc = slurp(argv[2], &len);
    char *begin = doc ? strstr(doc, BEGIN) : NULL;
    char *end = begin ? strstr(begin, END) : NULL;
    if (!end) {
        fprintf(stderr, "%s: no state-diagrams markers in %s\n", argv[0], argv[2]);
        free(doc);
        return 2;
    }
    end += strlen(END);
    char *want;
    size_t want_len;
    FILE *mem = open_memstream(&want, &want_len);
    diagrams(mem);
    fclose(mem);
    int same = (size_t)(end - begin) == want_len && memcmp(begin, want, want_len) == 0;
    int rc = 0;
    if (!strcmp(argv[1], "--check")) {
        if (!same) {
            fprintf(stderr, "%s: the state diagrams in %s differ from the tables in the code: "
                            "run make -C csrc state-diagrams-docs\n", argv[0], argv[2]);
            rc = 1;
        }
    } else if (!same) {
        FILE *f = fopen(argv[2], "wb");
        rc = !f || fwrite(doc, 1, (size_t)(begin - doc), f) != (size_t)(begin - doc) ||
             fwrite(want, 1, want_len, f) != want_len ||
             fwrite(end, 1, len - (size_t)(end - doc), f) != len - (size_t)(end - doc);
        if (f && fclose(f))
            rc = 1;
    }
    free(want);
    free(doc);
    return rc;
}
