/* nebula_conv_gemini.c: placeholder; the converter lands in its own commit
 * (nebula_conv_gemini.h is the contract). */
#include "nebula_conv_gemini.h"
