/* nebula_conv_responses.c: placeholder; the converter lands in its own commit
 * (nebula_conv_responses.h is the contract). */
#include "nebula_conv_responses.h"
