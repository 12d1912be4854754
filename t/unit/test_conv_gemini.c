/* test_conv_gemini.c: placeholder suite (nebula_conv_gemini.h). */
#include "nebula_unit.h"

Suite *unit_conv_gemini_suite(void)
{
    return suite_create("conv_gemini");
}
