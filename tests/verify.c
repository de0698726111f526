/*  =========================================================================
    verify - the harness's checker, in C, for runs of millions of numbers

    Usage: verify ACKED... -- OUTPUT...
    ACKED files hold the numbers sources had acknowledged (--acked), one per
    line; OUTPUT files hold what sinks printed in text format ("P 97"). The
    concatenation of the outputs is compared with the acknowledged numbers
    as multisets, in the style of tests/harness.py's check():
      lost        acknowledged and never printed
      duplicated  printed more often than acknowledged
      unexpected  printed, never acknowledged
      wrong       printed with the wrong verdict, by reference.c's
                  Miller-Rabin, independent of the worker's BPSW
    Prints one line "acked A results R lost L duplicated D unexpected U
    wrong W" and exits 0 if L, D, U and W are all 0, 1 otherwise, 2 on a
    usage or file error. Python's is_prime takes minutes for 20 million
    numbers; this takes seconds.
    =========================================================================
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reference.h"

typedef struct {
    int64_t *values;            //  the numbers read
    size_t count;               //  values in use
    size_t capacity;            //  values allocated
} s_list_t;

//  Appends a value, growing the list by doubling.
static void
s_push (s_list_t *list, int64_t value)
{
    if (list->count == list->capacity) {
        list->capacity = list->capacity ? 2 * list->capacity : 1 << 20;
        list->values = (int64_t *) realloc (list->values, list->capacity * sizeof (int64_t));
        if (!list->values) {
            fprintf (stderr, "verify: out of memory\n");
            exit (2);
        }
    }
    list->values [list->count++] = value;
}

static int
s_compare (const void *left, const void *right)
{
    int64_t a = *(const int64_t *) left, b = *(const int64_t *) right;
    return (a > b) - (a < b);
}

//  Returns true if the verdict printed for value is right.
static int
s_verdict_right (char tag, int64_t value)
{
    int prime = value >= 2 && ref_is_prime ((uint64_t) value);
    return tag == (prime ? 'P' : 'C');
}

int
main (int argc, char *argv [])
{
    s_list_t acked = { 0 }, printed = { 0 };
    uint64_t wrong = 0, malformed = 0;
    int index = 1;
    for (; index < argc && strcmp (argv [index], "--") != 0; index++) {
        FILE *file = fopen (argv [index], "r");
        if (!file) {
            fprintf (stderr, "verify: cannot read %s\n", argv [index]);
            return 2;
        }
        int64_t value;
        while (fscanf (file, "%" SCNd64, &value) == 1)
            s_push (&acked, value);
        fclose (file);
    }
    if (index == argc) {
        fprintf (stderr, "usage: verify ACKED... -- OUTPUT...\n");
        return 2;
    }
    for (index++; index < argc; index++) {
        FILE *file = fopen (argv [index], "r");
        if (!file) {
            fprintf (stderr, "verify: cannot read %s\n", argv [index]);
            return 2;
        }
        char line [128];
        while (fgets (line, sizeof line, file)) {
            char tag;
            int64_t value;
            if (sscanf (line, "%c %" SCNd64, &tag, &value) != 2
            ||  (tag != 'P' && tag != 'C')) {
                malformed++;
                continue;
            }
            s_push (&printed, value);
            wrong += !s_verdict_right (tag, value);
        }
        fclose (file);
    }
    qsort (acked.values, acked.count, sizeof (int64_t), s_compare);
    qsort (printed.values, printed.count, sizeof (int64_t), s_compare);
    //  Walk both sorted lists, value by value.
    uint64_t lost = 0, duplicated = 0, unexpected = 0;
    size_t a = 0, p = 0;
    while (a < acked.count || p < printed.count) {
        int64_t value = a < acked.count && (p == printed.count
                      || acked.values [a] <= printed.values [p])
                      ? acked.values [a] : printed.values [p];
        size_t want = 0, got = 0;
        while (a < acked.count && acked.values [a] == value)
            want++, a++;
        while (p < printed.count && printed.values [p] == value)
            got++, p++;
        if (want == 0)
            unexpected += got;
        else
        if (got < want)
            lost += want - got;
        else
            duplicated += got - want;
    }
    printf ("acked %zu results %zu lost %" PRIu64 " duplicated %" PRIu64
            " unexpected %" PRIu64 " wrong %" PRIu64 " malformed %" PRIu64 "\n",
            acked.count, printed.count, lost, duplicated, unexpected, wrong, malformed);
    free (acked.values);
    free (printed.values);
    return lost || duplicated || unexpected || wrong || malformed ? 1 : 0;
}
