/* nebula_conv_anthropic.c: placeholder; the converter lands in its own commit
 * (nebula_conv_anthropic.h is the contract). */
#include "nebula_conv_anthropic.h"
