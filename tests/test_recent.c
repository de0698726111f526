/*  =========================================================================
    test_recent - the broker's memory of recent source request ids: lookup
                  after store, eviction of the oldest id once `size` more
                  were stored, and one entry per id however often it is
                  stored (with eviction staying right afterwards)
    =========================================================================
*/
#include <criterion/criterion.h>

#include "recent.h"

//  Checks that id is remembered with acked.
static void
s_expect_known (pz_recent_t *recent, int64_t id, int64_t acked)
{
    int64_t got = -12345;
    cr_assert (pz_recent_lookup (recent, id, &got), "id %ld forgotten", (long) id);
    cr_assert_eq (got, acked, "id %ld acked %ld, expected %ld", (long) id, (long) got,
                  (long) acked);
}

//  Checks that id is not remembered, and that *acked is left alone.
static void
s_expect_unknown (pz_recent_t *recent, int64_t id)
{
    int64_t got = -12345;
    cr_assert (!pz_recent_lookup (recent, id, &got), "id %ld still remembered", (long) id);
    cr_assert_eq (got, -12345);
}

//  A stored id is found with its ack; others are not.
Test (recent, a_stored_id_is_found_with_its_ack, .timeout = 10)
{
    pz_recent_t *recent = pz_recent_new (8);
    s_expect_unknown (recent, 1);
    pz_recent_store (recent, 1, 10);
    pz_recent_store (recent, -7, 4096);         //  any non-zero id
    pz_recent_store (recent, INT64_MAX, 1);
    s_expect_known (recent, 1, 10);
    s_expect_known (recent, -7, 4096);
    s_expect_known (recent, INT64_MAX, 1);
    s_expect_unknown (recent, 2);
    s_expect_unknown (recent, 7);
    s_expect_unknown (recent, 0);
    pz_recent_destroy (&recent);
    cr_assert_null (recent);
    pz_recent_destroy (&recent);                //  NULL-safe
}

//  After `size` more ids were stored, the oldest is forgotten, one by one.
Test (recent, the_oldest_id_is_evicted_after_size_stores, .timeout = 10)
{
    pz_recent_t *recent = pz_recent_new (3);
    pz_recent_store (recent, 101, 1);
    pz_recent_store (recent, 102, 2);
    pz_recent_store (recent, 103, 3);
    s_expect_known (recent, 101, 1);
    s_expect_known (recent, 102, 2);
    s_expect_known (recent, 103, 3);
    pz_recent_store (recent, 104, 4);
    s_expect_unknown (recent, 101);
    s_expect_known (recent, 102, 2);
    s_expect_known (recent, 104, 4);
    pz_recent_store (recent, 105, 5);
    s_expect_unknown (recent, 102);
    s_expect_known (recent, 103, 3);
    s_expect_known (recent, 105, 5);
    pz_recent_destroy (&recent);
}

//  Size 1 remembers the last id only.
Test (recent, size_1_remembers_the_last_id, .timeout = 10)
{
    pz_recent_t *recent = pz_recent_new (1);
    pz_recent_store (recent, 5, 50);
    s_expect_known (recent, 5, 50);
    pz_recent_store (recent, 6, 60);
    s_expect_unknown (recent, 5);
    s_expect_known (recent, 6, 60);
    pz_recent_store (recent, 6, 61);
    s_expect_known (recent, 6, 61);
    pz_recent_store (recent, 5, 52);
    s_expect_unknown (recent, 6);
    s_expect_known (recent, 5, 52);
    pz_recent_destroy (&recent);
}

//  Storing an id twice keeps one entry: it takes one slot, so the memory
//  still holds `size` distinct ids, and evicting it later (once) leaves
//  every other id where it was. Checked round after round, so that a second
//  slot for the same id, or a stale index entry, shows.
Test (recent, an_id_stored_twice_keeps_one_entry_and_eviction_stays_right, .timeout = 10)
{
    pz_recent_t *recent = pz_recent_new (3);
    pz_recent_store (recent, 1, 10);            //  A
    pz_recent_store (recent, 1, 11);            //  A again
    s_expect_known (recent, 1, 11);
    pz_recent_store (recent, 2, 20);            //  B
    pz_recent_store (recent, 3, 30);            //  C: A, B, C fill the three slots
    s_expect_known (recent, 1, 11);
    s_expect_known (recent, 2, 20);
    s_expect_known (recent, 3, 30);
    pz_recent_store (recent, 4, 40);            //  evicts A, the oldest
    s_expect_unknown (recent, 1);
    s_expect_known (recent, 2, 20);
    s_expect_known (recent, 3, 30);
    s_expect_known (recent, 4, 40);
    pz_recent_store (recent, 5, 50);            //  evicts B
    s_expect_unknown (recent, 2);
    s_expect_known (recent, 3, 30);
    s_expect_known (recent, 4, 40);
    s_expect_known (recent, 5, 50);
    //  Stored again once evicted: a new entry, the newest.
    pz_recent_store (recent, 1, 12);
    s_expect_unknown (recent, 3);
    s_expect_known (recent, 1, 12);
    s_expect_known (recent, 4, 40);
    s_expect_known (recent, 5, 50);
    //  And many more rounds: always exactly the last three distinct ids.
    for (int64_t id = 6; id < 100; id++) {
        pz_recent_store (recent, id, id * 10);
        pz_recent_store (recent, id, id * 10 + 1);      //  twice each
        s_expect_known (recent, id, id * 10 + 1);
        if (id >= 8) {
            s_expect_known (recent, id - 1, (id - 1) * 10 + 1);
            s_expect_known (recent, id - 2, (id - 2) * 10 + 1);
            s_expect_unknown (recent, id - 3);
        }
    }
    pz_recent_destroy (&recent);
}

//  At scale: of 5000 ids stored in a memory of 1000, exactly the last
//  1000 are remembered, each with its own ack.
Test (recent, a_large_memory_keeps_exactly_the_last_size_ids, .timeout = 10)
{
    pz_recent_t *recent = pz_recent_new (1000);
    for (int64_t id = 1; id <= 5000; id++)
        pz_recent_store (recent, id * 7919, id);
    for (int64_t id = 1; id <= 5000; id++) {
        int64_t acked = 0;
        bool known = pz_recent_lookup (recent, id * 7919, &acked);
        cr_assert_eq (known, id > 4000, "id %ld: %s", (long) id, known ? "known" : "unknown");
        if (known)
            cr_assert_eq (acked, id);
    }
    pz_recent_destroy (&recent);
}
