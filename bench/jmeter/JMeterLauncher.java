// JMeterLauncher: runs Debian's JMeter 2.13 (package jmeter) with the XStream of Debian 12
// (libxstream-java 1.4.20), which refuses to read any class it was not told to allow: JMeter
// 2.13 predates that allow-list, so every test plan fails to load with
// "ForbiddenClassException: org.apache.jmeter.save.ScriptWrapper".
//
// What it does, then hands over to JMeter's own entry point (NewDriver.main) with the same
// arguments: builds JMeter's class loader (NewDriver's, from jmeter.home/lib and lib/ext),
// loads jmeter.properties so that JMeter's SaveService finds saveservice.properties (its class
// aliases and converters) when it initialises, and allows JMeter's and JOrphan's own classes
// (org.apache.jmeter.**, org.apache.jorphan.**) on SaveService's two XStream instances, the
// one for test plans (.jmx) and the one for results (.jtl). Nothing else is allowed, so
// XStream's protection against other classes in a plan stays. Reflection only: it compiles
// without JMeter's jars, and runs as a single source file (java JMeterLauncher.java, no
// JDK needed), see bench/jmeter/run-jmeter.
import java.lang.reflect.Field;
import java.lang.reflect.Method;

public class JMeterLauncher {
    static final String[] ALLOWED = {"org.apache.jmeter.**", "org.apache.jorphan.**"};

    static Object staticField(Class<?> c, String name) throws ReflectiveOperationException {
        Field f = c.getDeclaredField(name);
        f.setAccessible(true);
        return f.get(null);
    }

    public static void main(String[] args) throws Throwable {
        String home = System.getProperty("jmeter.home");
        if (home == null) {
            System.err.println("JMeterLauncher: -Djmeter.home=DIR is required (Debian: /usr/share/jmeter)");
            System.exit(2);
        }
        // NewDriver's static initialiser makes the class loader over JMeter's jars.
        Class<?> newDriver = Class.forName("org.apache.jmeter.NewDriver");
        ClassLoader loader = (ClassLoader) staticField(newDriver, "loader");
        Thread.currentThread().setContextClassLoader(loader);

        Class<?> utils = Class.forName("org.apache.jmeter.util.JMeterUtils", true, loader);
        utils.getMethod("setJMeterHome", String.class).invoke(null, home);
        utils.getMethod("loadJMeterProperties", String.class)
             .invoke(null, home + "/bin/jmeter.properties");

        Class<?> saveService = Class.forName("org.apache.jmeter.save.SaveService", true, loader);
        for (String name : new String[] {"JMXSAVER", "JTLSAVER"}) {
            Object xstream = staticField(saveService, name);
            Method allow = xstream.getClass().getMethod("allowTypesByWildcard", String[].class);
            allow.invoke(xstream, (Object) ALLOWED);
        }
        newDriver.getMethod("main", String[].class).invoke(null, (Object) args);
    }
}
