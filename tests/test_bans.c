/*  =========================================================================
    test_bans - the table of workers the audit cut off: a ban holds until
                its end and not after, a later end extends it and an
                earlier one does not shorten it, expired bans are dropped,
                and names are compared whole
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>

#include "bans.h"

//  A ban holds until its end, exclusive.
Test (bans, a_ban_holds_until_its_end, .timeout = 10)
{
    pz_bans_t *bans = pz_bans_new ();
    cr_assert_not (pz_bans_active (bans, "key:abc", 0));
    cr_assert_not (pz_bans_active (bans, NULL, 0));
    pz_bans_add (bans, "key:abc", 1000);
    cr_assert (pz_bans_active (bans, "key:abc", 0));
    cr_assert (pz_bans_active (bans, "key:abc", 999));
    cr_assert_eq (pz_bans_until (bans, "key:abc", 500), 1000);
    cr_assert_not (pz_bans_active (bans, "key:ab", 500), "prefix taken for the name");
    cr_assert_not (pz_bans_active (bans, "key:abcd", 500));
    cr_assert_not (pz_bans_active (bans, "worker:abc", 500));
    cr_assert_not (pz_bans_active (bans, "key:abc", 1000));
    //  Once over, it is forgotten: an earlier time does not bring it back.
    cr_assert_not (pz_bans_active (bans, "key:abc", 10));
    pz_bans_destroy (&bans);
    cr_assert_null (bans);
    pz_bans_destroy (&bans);
}

//  A later end extends a ban; an earlier one leaves it.
Test (bans, a_later_end_extends_an_earlier_one_does_not_shorten, .timeout = 10)
{
    pz_bans_t *bans = pz_bans_new ();
    pz_bans_add (bans, "worker:w1", 1000);
    pz_bans_add (bans, "worker:w1", 500);
    cr_assert_eq (pz_bans_until (bans, "worker:w1", 0), 1000);
    pz_bans_add (bans, "worker:w1", 5000);
    cr_assert_eq (pz_bans_until (bans, "worker:w1", 0), 5000);
    cr_assert (pz_bans_active (bans, "worker:w1", 4999));
    pz_bans_destroy (&bans);
}

//  Expiry drops exactly the bans that are over.
Test (bans, expiry_drops_what_is_over, .timeout = 10)
{
    pz_bans_t *bans = pz_bans_new ();
    char name [32];
    for (int index = 0; index < 100; index++) {
        snprintf (name, sizeof name, "worker:w%d", index);
        pz_bans_add (bans, name, 100 * (index + 1));
    }
    cr_assert_eq (pz_bans_expire (bans, 0), 100);
    cr_assert_eq (pz_bans_expire (bans, 5000), 50);    //  ends 5100 .. 10000 left
    cr_assert_not (pz_bans_active (bans, "worker:w49", 5000));
    cr_assert (pz_bans_active (bans, "worker:w50", 5000));
    cr_assert_eq (pz_bans_expire (bans, 10000), 0);
    pz_bans_destroy (&bans);
}
