/* test_conv_anthropic.c: placeholder suite (nebula_conv_anthropic.h). */
#include "nebula_unit.h"

Suite *unit_conv_anthropic_suite(void)
{
    return suite_create("conv_anthropic");
}
