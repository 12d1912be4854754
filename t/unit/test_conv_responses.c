/* test_conv_responses.c: placeholder suite (nebula_conv_responses.h). */
#include "nebula_unit.h"

Suite *unit_conv_responses_suite(void)
{
    return suite_create("conv_responses");
}
