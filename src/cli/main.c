#include <stdio.h>

#include "headstart.h"

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("headstart %s\n", HEADSTART_VERSION);
    return 0;
}
